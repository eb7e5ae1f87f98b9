// Clang thread-safety annotations
// (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
// With clang and -Wthread-safety (the CMake option SHARDPS_THREAD_SAFETY,
// run by CI as scripts/check-thread-safety.sh), the compiler proves that every
// field marked GUARDED_BY(mu) is touched only with mu held, and that functions
// marked REQUIRES(mu) are called only with it held. With other compilers the
// macros expand to nothing. Use them with shardps::Mutex (common/mutex.h):
// std::mutex carries no annotations in libstdc++, so the analysis cannot see
// it.
#pragma once

#if defined(__clang__)
#define SHARDPS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SHARDPS_THREAD_ANNOTATION(x)
#endif

// On a class: instances are a lock the analysis tracks.
#define CAPABILITY(x) SHARDPS_THREAD_ANNOTATION(capability(x))
// On an RAII class: construction acquires, destruction releases.
#define SCOPED_CAPABILITY SHARDPS_THREAD_ANNOTATION(scoped_lockable)
// On a field: read or written only with the named lock held.
#define GUARDED_BY(x) SHARDPS_THREAD_ANNOTATION(guarded_by(x))
// On a pointer field: the pointee is guarded by the named lock.
#define PT_GUARDED_BY(x) SHARDPS_THREAD_ANNOTATION(pt_guarded_by(x))
// On a function: the caller must hold the named locks.
#define REQUIRES(...) \
  SHARDPS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: the caller must not hold the named locks (it takes them).
#define EXCLUDES(...) SHARDPS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: acquires / releases the named locks (this, if none named).
#define ACQUIRE(...) SHARDPS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) SHARDPS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// On a function that checks at run time that the lock is held.
#define ASSERT_CAPABILITY(x) SHARDPS_THREAD_ANNOTATION(assert_capability(x))
// On a function the analysis cannot follow; say why beside each use.
#define NO_THREAD_SAFETY_ANALYSIS \
  SHARDPS_THREAD_ANNOTATION(no_thread_safety_analysis)
