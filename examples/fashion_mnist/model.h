// The networks a Fashion-MNIST worker can train. Each names its parameters
// (tensors of the model spec) and computes, for a batch, the mean softmax
// cross-entropy and every parameter's gradient with Eigen.
#ifndef SHARDPS_EXAMPLES_FASHION_MNIST_MODEL_H_
#define SHARDPS_EXAMPLES_FASHION_MNIST_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "examples/fashion_mnist/param_store.h"

namespace fashion_mnist {

class Model {
 public:
  virtual ~Model() = default;
  // The parameters, in the order Step's gradients come in.
  virtual std::vector<Param> Params() const = 0;
  // Class probabilities [rows, 10] for images x [rows, 784] in [0, 1].
  virtual void Predict(const ParamStore& p, const Matrix& x, Matrix* probs) = 0;
  // Mean cross-entropy of the batch; fills one gradient per parameter.
  // Reuses its buffers: no allocation per step once warmed up.
  virtual float Step(const ParamStore& p, const Matrix& x,
                     const std::vector<int>& labels,
                     std::vector<Matrix>* grads) = 0;
};

// 784-256-128-10, ReLU (examples/fashion_mnist/mlp.toml).
std::unique_ptr<Model> MakeMlp();
// conv 5x5x16, ReLU, 2x2 max-pool, conv 5x5x32, ReLU, 2x2 max-pool, dense
// 512-10 (examples/fashion_mnist/cnn.toml).
std::unique_ptr<Model> MakeCnn();

// Softmax rows of `logits` in place; returns the batch's mean cross-entropy
// and turns `logits` into d(loss)/d(logits) when `labels` is not null.
float SoftmaxCrossEntropy(Matrix* logits, const std::vector<int>* labels);

}  // namespace fashion_mnist

#endif  // SHARDPS_EXAMPLES_FASHION_MNIST_MODEL_H_
