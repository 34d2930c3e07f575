// HML importance state, CUDA: the element functions of importance.h, one kernel launch
// per parameter tensor (a model has tens of them, so launch cost stays in microseconds).
// Built with --fmad=false so results equal the CPU and PyTorch paths bit for bit.
#include <cuda_runtime.h>

#include <string>

#include "importance.h"

namespace hml {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

int64_t grid_for(int64_t numel) {
  const int64_t blocks = (numel + kThreads - 1) / kThreads;
  return blocks < kMaxBlocks ? blocks : kMaxBlocks;
}

std::string last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? std::string() : std::string(cudaGetErrorString(err));
}

__global__ void paper_kernel(const float* __restrict__ param, const float* __restrict__ grad, int64_t numel,
                             float* __restrict__ fisher, float* __restrict__ omega,
                             float* __restrict__ theta_prev, float* __restrict__ pending, PaperArgs a) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    float f = fisher[i], o = omega[i], tp = theta_prev[i], p = pending[i];
    paper_element(grad != nullptr ? grad[i] : 0.0f, param[i], f, o, tp, p, a);
    fisher[i] = f;
    if (a.commit) omega[i] = o;
    theta_prev[i] = tp;
    pending[i] = p;
  }
}

__global__ void official_kernel(const float* __restrict__ param, const float* __restrict__ grad, int64_t numel,
                                float* __restrict__ fisher, float* __restrict__ omega,
                                float* __restrict__ theta_prev, FisherArgs a) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    float f = fisher[i], o = omega[i], tp = theta_prev[i];
    official_element(grad != nullptr ? grad[i] : 0.0f, param[i], f, o, tp, a);
    fisher[i] = f;
    omega[i] = o;
    theta_prev[i] = tp;
  }
}

// A fixed-order tree over the block's threads in shared memory (so the partial sums do not
// depend on scheduling); thread 0 gets the block's sum.
__device__ double block_sum(double sum) {
  __shared__ double shared[kThreads];
  shared[threadIdx.x] = sum;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) shared[threadIdx.x] += shared[threadIdx.x + width];
    __syncthreads();
  }
  return shared[0];
}

// One block per kChunk elements. Gradient factors go to out when it is given.
__global__ void mr_forward_kernel(const float* __restrict__ param, int64_t numel, const float* __restrict__ pf,
                                  const float* __restrict__ po, const float* __restrict__ pt, bool l2, float coef,
                                  float* __restrict__ out, double* __restrict__ partials) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t end = begin + kChunk < numel ? begin + kChunk : numel;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    sum += mr_term(param[i], pf[i], po[i], pt[i], l2);
    if (out != nullptr) out[i] = mr_grad_factor(param[i], pf[i], po[i], pt[i], l2, coef);
  }
  const double total = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// The element updates of one segment (pointers at the segment's offset), for the fused kernel.
struct PaperUpdate {
  const float* grad;
  float* fisher;
  float* omega;
  float* theta_prev;
  float* pending;
  PaperArgs a;
  __device__ void operator()(int64_t i, float theta) const {
    float f = fisher[i], o = omega[i], tp = theta_prev[i], p = pending[i];
    paper_element(grad != nullptr ? grad[i] : 0.0f, theta, f, o, tp, p, a);
    fisher[i] = f;
    if (a.commit) omega[i] = o;
    theta_prev[i] = tp;
    pending[i] = p;
  }
};

struct OfficialUpdate {
  const float* grad;
  float* fisher;
  float* omega;
  float* theta_prev;
  FisherArgs a;
  __device__ void operator()(int64_t i, float theta) const {
    float f = fisher[i], o = omega[i], tp = theta_prev[i];
    official_element(grad != nullptr ? grad[i] : 0.0f, theta, f, o, tp, a);
    fisher[i] = f;
    omega[i] = o;
    theta_prev[i] = tp;
  }
};

// A step's update fused with the MR gradient at the updated parameters (mr's pointers at the
// segment's offset): the chunks and the tree of mr_forward_kernel, so the partials are equal.
template <typename Update>
__global__ void step_mr_kernel(const float* __restrict__ param, int64_t numel, Update update, MRFusion mr,
                               double* __restrict__ partials) {
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t end = begin + kChunk < numel ? begin + kChunk : numel;
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float theta = param[i];
    update(i, theta);
    const float pf = mr.parent.fisher[i], po = mr.parent.omega[i], pt = mr.parent.theta[i];
    sum += mr_term(theta, pf, po, pt, mr.l2);
    mr.factor[i] = mr_grad_factor(theta, pf, po, pt, mr.l2, mr.coef);
  }
  const double total = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

MRFusion at_offset(const MRFusion& mr, int64_t offset) {
  return {{mr.parent.fisher + offset, mr.parent.omega + offset, mr.parent.theta + offset}, mr.factor + offset,
          mr.l2, mr.coef};
}

}  // namespace

std::string paper_step_cuda(const Segment* segs, int64_t num_segs, const StateBuffers& buf, const PaperArgs& a,
                            const MRFusion& mr, double* partials, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t written = 0;
  for (int64_t k = 0; k < num_segs; ++k) {
    const Segment& seg = segs[k];
    if (seg.numel == 0) continue;
    if (mr.factor != nullptr) {
      const int64_t blocks = (seg.numel + kChunk - 1) / kChunk;
      const PaperUpdate update{seg.grad, buf.fisher + seg.offset, buf.omega + seg.offset,
                               buf.theta_prev + seg.offset, buf.pending + seg.offset, a};
      step_mr_kernel<<<blocks, kThreads, 0, s>>>(seg.param, seg.numel, update, at_offset(mr, seg.offset),
                                                  partials + written);
      written += blocks;
      continue;
    }
    paper_kernel<<<grid_for(seg.numel), kThreads, 0, s>>>(seg.param, seg.grad, seg.numel, buf.fisher + seg.offset,
                                                          buf.omega + seg.offset, buf.theta_prev + seg.offset,
                                                          buf.pending + seg.offset, a);
  }
  return last_error();
}

std::string official_step_cuda(const Segment* segs, int64_t num_segs, const StateBuffers& buf,
                               const FisherArgs& a, const MRFusion& mr, double* partials, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t written = 0;
  for (int64_t k = 0; k < num_segs; ++k) {
    const Segment& seg = segs[k];
    if (seg.numel == 0) continue;
    if (mr.factor != nullptr) {
      const int64_t blocks = (seg.numel + kChunk - 1) / kChunk;
      const OfficialUpdate update{seg.grad, buf.fisher + seg.offset, buf.omega + seg.offset,
                                  buf.theta_prev + seg.offset, a};
      step_mr_kernel<<<blocks, kThreads, 0, s>>>(seg.param, seg.numel, update, at_offset(mr, seg.offset),
                                                  partials + written);
      written += blocks;
      continue;
    }
    official_kernel<<<grid_for(seg.numel), kThreads, 0, s>>>(seg.param, seg.grad, seg.numel,
                                                             buf.fisher + seg.offset, buf.omega + seg.offset,
                                                             buf.theta_prev + seg.offset, a);
  }
  return last_error();
}

std::string mr_forward_cuda(const MRSegment* segs, int64_t num_segs, const ParentBuffers& parent, bool l2,
                            float coef, double* partials, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  int64_t written = 0;
  for (int64_t k = 0; k < num_segs; ++k) {
    const MRSegment& seg = segs[k];
    const int64_t blocks = (seg.numel + kChunk - 1) / kChunk;
    if (blocks == 0) continue;
    mr_forward_kernel<<<blocks, kThreads, 0, s>>>(seg.param, seg.numel, parent.fisher + seg.offset,
                                                  parent.omega + seg.offset, parent.theta + seg.offset, l2, coef,
                                                  seg.grad_out, partials + written);
    written += blocks;
  }
  return last_error();
}

}  // namespace hml
