// HML importance state: the per-element arithmetic of one training step, shared by the
// OpenMP (CPU) and CUDA implementations, and the plain-pointer entry points of both.
//
// No torch header here: bindings.cpp turns tensors into Segments. The element functions
// are the single definition of the arithmetic; hml_patch/importance/reference.py performs
// the same float32 operations in the same order, so all three agree bit for bit (the
// builds disable FMA contraction: -ffp-contract=off, nvcc --fmad=false).
#pragma once

#include <cstdint>
#include <string>

#ifdef __CUDACC__
#define HML_HD __host__ __device__ __forceinline__
#else
#define HML_HD inline
#endif

namespace hml {

// One parameter tensor: its values, its gradient (nullptr: no gradient, read as zero),
// where it starts in the flat state buffers, and how many elements it has.
struct Segment {
  const float* param;
  const float* grad;
  int64_t offset;
  int64_t numel;
};

// One parameter tensor for the MR penalty: values, gradient output (nullptr: not wanted).
struct MRSegment {
  const float* param;
  float* grad_out;
  int64_t offset;
  int64_t numel;
};

// Flat fp32 state buffers of length P. pending is unused (nullptr) by the official rule.
struct StateBuffers {
  float* fisher;
  float* omega;
  float* theta_prev;
  float* pending;
};

// Both rules update the Fisher as F = c * fisher_a + F * fisher_b, c = g^2 or, with
// clamp_square, the authors' clamp(nan_to_0(g^2), 1e-20, 1): running mean a = 1/t,
// b = (t-1)/t; EMA a = alpha, b = 1 - alpha.
struct FisherArgs {
  float grad_scale;  // multiplier applied to the stored gradient
  float fisher_a;
  float fisher_b;
  bool clamp_square;
};

// Paper rule (HML Eq. 6-11): deferred loss-decrease gate.
struct PaperArgs {
  FisherArgs fisher;
  bool commit;  // add the previous step's pending contribution to omega
  float eps;
};

// Parent (previous stage) buffers read by the MR penalty.
struct ParentBuffers {
  const float* fisher;
  const float* omega;
  const float* theta;
};

// The MR gradient fused into a step: at the updated parameters, the pass also writes the
// gradient factor of every element into the flat buffer `factor` (length P, like the state)
// and one double partial sum of the MR terms per kChunk piece (the next step's penalty).
// factor == nullptr: no fusion.
struct MRFusion {
  ParentBuffers parent;
  float* factor;
  bool l2;
  float coef;
};

// max(x, lo) that lets NaN through, as torch.clamp_min does.
HML_HD float clamp_min_keep_nan(float x, float lo) { return x < lo ? lo : x; }

// The new Fisher of one element; returns the scaled gradient g through *g_out.
HML_HD float fisher_element(float grad, float fisher, const FisherArgs& a, float* g_out) {
  // Constants go through double like the Python scalars of the reference.
  const float lo = static_cast<float>(1e-20);
  const float g = grad * a.grad_scale;
  *g_out = g;
  float current = g * g;
  if (a.clamp_square) {
    if (current != current) current = 0.0f;
    current = current < lo ? lo : (current > 1.0f ? 1.0f : current);
  }
  return current * a.fisher_a + fisher * a.fisher_b;
}

HML_HD void paper_element(float grad, float theta, float& fisher, float& omega, float& theta_prev,
                          float& pending, const PaperArgs& a) {
  if (a.commit) omega = omega + pending;
  float g;
  fisher = fisher_element(grad, fisher, a.fisher, &g);
  const float d = theta - theta_prev;
  pending = -(g * d) / (fisher * 0.5f * d * d + a.eps);
  theta_prev = theta;
}

// The authors' rule: omega += 2 max(g d, 1e-15) / max(F d^2, 1e-20), NaN -> 0, no gate.
HML_HD void official_element(float grad, float theta, float& fisher, float& omega, float& theta_prev,
                             const FisherArgs& a) {
  const float num_lo = static_cast<float>(1e-15);
  const float den_lo = static_cast<float>(1e-20);
  float g;
  fisher = fisher_element(grad, fisher, a, &g);
  const float d = theta - theta_prev;
  const float num = clamp_min_keep_nan(g * d, num_lo);
  const float den = clamp_min_keep_nan(fisher * d * d, den_lo);
  float contribution = num * 2.0f / den;
  if (contribution != contribution) contribution = 0.0f;
  omega = omega + contribution;
  theta_prev = theta;
}

// One MR element: (F + Omega) * D, and the gradient factor (F + Omega) * (d or sign d) * coef
// (the caller scales it by the incoming gradient afterwards).
HML_HD float mr_term(float theta, float parent_fisher, float parent_omega, float parent_theta, bool l2) {
  const float w = parent_fisher + parent_omega;
  const float d = theta - parent_theta;
  return l2 ? w * d * d : w * (d < 0.0f ? -d : d);
}

HML_HD float mr_grad_factor(float theta, float parent_fisher, float parent_omega, float parent_theta, bool l2,
                            float coef) {
  const float w = parent_fisher + parent_omega;
  const float d = theta - parent_theta;
  const float s = l2 ? d : (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f));
  return w * s * coef;
}

// Number of elements one CPU task or one CUDA reduction partial covers.
constexpr int64_t kChunk = 1 << 15;

// Number of kChunk pieces of the segments: the MR partial sums, in segment order.
template <typename SegmentT>
int64_t num_pieces(const SegmentT* segs, int64_t num_segs) {
  int64_t count = 0;
  for (int64_t s = 0; s < num_segs; ++s) count += (segs[s].numel + kChunk - 1) / kChunk;
  return count;
}

// The steps write num_pieces(segs) MR partials when mr.factor is set (partials unused otherwise).
void paper_step_cpu(const Segment* segs, int64_t num_segs, const StateBuffers& buf, const PaperArgs& a,
                    const MRFusion& mr, double* partials, int num_threads);
void official_step_cpu(const Segment* segs, int64_t num_segs, const StateBuffers& buf, const FisherArgs& a,
                       const MRFusion& mr, double* partials, int num_threads);
// MR forward (and gradient): writes one double partial sum per kChunk-sized piece of each
// segment, in segment order (num_pieces of them), and the gradient factors of the
// segments that have a grad_out.
void mr_forward_cpu(const MRSegment* segs, int64_t num_segs, const ParentBuffers& parent, bool l2, float coef,
                    double* partials, int num_threads);

#ifdef HML_WITH_CUDA
// CUDA launchers: same contracts, on the given stream (a cudaStream_t passed as void*).
// They return an empty string on success, else the CUDA error text.
std::string paper_step_cuda(const Segment* segs, int64_t num_segs, const StateBuffers& buf,
                            const PaperArgs& a, const MRFusion& mr, double* partials, void* stream);
std::string official_step_cuda(const Segment* segs, int64_t num_segs, const StateBuffers& buf,
                               const FisherArgs& a, const MRFusion& mr, double* partials, void* stream);
std::string mr_forward_cuda(const MRSegment* segs, int64_t num_segs, const ParentBuffers& parent, bool l2,
                            float coef, double* partials, void* stream);
#endif

}  // namespace hml
