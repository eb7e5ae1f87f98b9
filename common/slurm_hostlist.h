// ExpandHostlist(): Slurm's compact host list ("node[1-3,7],login1") as the
// names it stands for, in Slurm's order.
//
// Slurm hands a job its nodes in this form (SLURM_JOB_NODELIST,
// SLURM_STEP_NODELIST); `scontrol show hostnames` expands it the same way,
// but needs a Slurm config on the machine, so shardps expands it itself.
//
// Thread-safety: a pure function.
#ifndef SHARDPS_COMMON_SLURM_HOSTLIST_H_
#define SHARDPS_COMMON_SLURM_HOSTLIST_H_

#include <string>
#include <string_view>
#include <vector>

#include "shardps/status.h"

namespace shardps {

// The most host names one list may stand for (Slurm's own limit per range).
inline constexpr size_t kMaxHostlistHosts = 65536;

// Expands `hostlist`: items separated by commas (commas inside brackets
// separate ranges), each item literal text with zero or more bracket groups
// "[a-b,c,...]". A group stands for each of its numbers in order; a range
// keeps the width of its first number ("n[01-10]" is n01..n10, "n[1-010]"
// is n1..n10). Several groups multiply, the leftmost varying slowest
// ("r[1-2]-n[1-2]" is r1-n1 r1-n2 r2-n1 r2-n2). Duplicates are kept, in
// order, as Slurm keeps them. Text after the last group is kept too (Slurm
// itself refuses "n[1-2]b"; no Slurm variable holds one).
//
// Returns the names on success. Errors are kInvalidArgument naming the
// item and the problem: an empty list or item, unbalanced or nested
// brackets, an empty group or range, a range that is not digits, a
// reversed range ("n[3-1]"), whitespace, or more than kMaxHostlistHosts
// names in all.
Result<std::vector<std::string>> ExpandHostlist(std::string_view hostlist);

}  // namespace shardps

#endif  // SHARDPS_COMMON_SLURM_HOSTLIST_H_
