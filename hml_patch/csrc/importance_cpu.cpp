// HML importance state, CPU: one OpenMP pass over all parameter elements per call.
//
// Work is split into tasks of at most kChunk elements of one segment, so the split (and
// therefore every result, the MR partial sums included) does not depend on the number
// of threads.
#include <omp.h>

#include <vector>

#include "importance.h"

namespace hml {
namespace {

constexpr int kLanes = 8;

struct Task {
  int64_t seg;
  int64_t begin;  // element index inside the segment
  int64_t end;
};

template <typename SegmentT>
std::vector<Task> make_tasks(const SegmentT* segs, int64_t num_segs) {
  std::vector<Task> tasks;
  for (int64_t s = 0; s < num_segs; ++s) {
    for (int64_t b = 0; b < segs[s].numel; b += kChunk) {
      const int64_t e = b + kChunk < segs[s].numel ? b + kChunk : segs[s].numel;
      tasks.push_back({s, b, e});
    }
  }
  return tasks;
}

// Runs body(k, task, segment) for every chunk task k of the segments, in parallel.
template <typename SegmentT, typename Body>
void for_each_task(const SegmentT* segs, int64_t num_segs, int num_threads, Body body) {
  const std::vector<Task> tasks = make_tasks(segs, num_segs);
  const int64_t n = static_cast<int64_t>(tasks.size());
#pragma omp parallel for schedule(static) num_threads(num_threads)
  for (int64_t k = 0; k < n; ++k) body(k, tasks[k], segs[tasks[k].seg]);
}

template <bool kHasGrad, bool kCommit, bool kClamp>
void paper_range(const Segment& seg, int64_t begin, int64_t end, const StateBuffers& buf, const PaperArgs& a) {
  const float* __restrict__ param = seg.param;
  const float* __restrict__ grad = seg.grad;
  float* __restrict__ fisher = buf.fisher + seg.offset;
  float* __restrict__ omega = buf.omega + seg.offset;
  float* __restrict__ theta_prev = buf.theta_prev + seg.offset;
  float* __restrict__ pending = buf.pending + seg.offset;
  PaperArgs args = a;  // a local copy with the flags as constants: stores cannot alias it
  args.commit = kCommit;
  args.fisher.clamp_square = kClamp;
  // The buffers, parameters and gradients never overlap; without this GCC gives up on
  // vectorising (too many run-time alias checks).
#pragma GCC ivdep
  for (int64_t i = begin; i < end; ++i) {
    paper_element(kHasGrad ? grad[i] : 0.0f, param[i], fisher[i], omega[i], theta_prev[i], pending[i], args);
  }
}

template <bool kHasGrad, bool kClamp>
void official_range(const Segment& seg, int64_t begin, int64_t end, const StateBuffers& buf,
                    const FisherArgs& a) {
  const float* __restrict__ param = seg.param;
  const float* __restrict__ grad = seg.grad;
  float* __restrict__ fisher = buf.fisher + seg.offset;
  float* __restrict__ omega = buf.omega + seg.offset;
  float* __restrict__ theta_prev = buf.theta_prev + seg.offset;
  FisherArgs args = a;
  args.clamp_square = kClamp;
#pragma GCC ivdep
  for (int64_t i = begin; i < end; ++i) {
    official_element(kHasGrad ? grad[i] : 0.0f, param[i], fisher[i], omega[i], theta_prev[i], args);
  }
}

template <bool kHasGrad, bool kCommit>
void paper_task(const Segment& seg, const Task& t, const StateBuffers& buf, const PaperArgs& a) {
  if (a.fisher.clamp_square) paper_range<kHasGrad, kCommit, true>(seg, t.begin, t.end, buf, a);
  else paper_range<kHasGrad, kCommit, false>(seg, t.begin, t.end, buf, a);
}

template <bool kHasGrad>
void official_task(const Segment& seg, const Task& t, const StateBuffers& buf, const FisherArgs& a) {
  if (a.clamp_square) official_range<kHasGrad, true>(seg, t.begin, t.end, buf, a);
  else official_range<kHasGrad, false>(seg, t.begin, t.end, buf, a);
}

// Sum of the MR terms of elements [begin, end) of one segment, writing gradient factors
// when kOut. kLanes interleaved accumulators combined in a fixed order: no serial
// dependency chain, and a result independent of the thread count.
template <bool kL2, bool kOut>
double mr_range(const MRSegment& seg, int64_t begin, int64_t end, const ParentBuffers& parent, float coef) {
  const float* __restrict__ param = seg.param;
  const float* __restrict__ pf = parent.fisher + seg.offset;
  const float* __restrict__ po = parent.omega + seg.offset;
  const float* __restrict__ pt = parent.theta + seg.offset;
  float* __restrict__ out = seg.grad_out;
  double lanes[kLanes] = {};
  int64_t i = begin;
#pragma GCC ivdep
  for (; i + kLanes <= end; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      lanes[j] += mr_term(param[i + j], pf[i + j], po[i + j], pt[i + j], kL2);
      if (kOut) out[i + j] = mr_grad_factor(param[i + j], pf[i + j], po[i + j], pt[i + j], kL2, coef);
    }
  }
  for (; i < end; ++i) {
    lanes[0] += mr_term(param[i], pf[i], po[i], pt[i], kL2);
    if (kOut) out[i] = mr_grad_factor(param[i], pf[i], po[i], pt[i], kL2, coef);
  }
  double sum = 0.0;
  for (int j = 0; j < kLanes; ++j) sum += lanes[j];
  return sum;
}

// The MR gradient fused into a step's task: mr_range over the chunk the step just updated
// (still in cache), its factors into the flat buffer; mr_forward's partial of the same piece.
double mr_piece(const Segment& seg, const Task& t, const MRFusion& mr) {
  const MRSegment piece{seg.param, mr.factor + seg.offset, seg.offset, seg.numel};
  return mr.l2 ? mr_range<true, true>(piece, t.begin, t.end, mr.parent, mr.coef)
               : mr_range<false, true>(piece, t.begin, t.end, mr.parent, mr.coef);
}

}  // namespace

void paper_step_cpu(const Segment* segs, int64_t num_segs, const StateBuffers& buf, const PaperArgs& a,
                    const MRFusion& mr, double* partials, int num_threads) {
  for_each_task(segs, num_segs, num_threads, [&](int64_t k, const Task& t, const Segment& seg) {
    const bool has_grad = seg.grad != nullptr;
    if (has_grad && a.commit) paper_task<true, true>(seg, t, buf, a);
    else if (has_grad) paper_task<true, false>(seg, t, buf, a);
    else if (a.commit) paper_task<false, true>(seg, t, buf, a);
    else paper_task<false, false>(seg, t, buf, a);
    if (mr.factor != nullptr) partials[k] = mr_piece(seg, t, mr);
  });
}

void official_step_cpu(const Segment* segs, int64_t num_segs, const StateBuffers& buf, const FisherArgs& a,
                       const MRFusion& mr, double* partials, int num_threads) {
  for_each_task(segs, num_segs, num_threads, [&](int64_t k, const Task& t, const Segment& seg) {
    if (seg.grad != nullptr) official_task<true>(seg, t, buf, a);
    else official_task<false>(seg, t, buf, a);
    if (mr.factor != nullptr) partials[k] = mr_piece(seg, t, mr);
  });
}

void mr_forward_cpu(const MRSegment* segs, int64_t num_segs, const ParentBuffers& parent, bool l2, float coef,
                    double* partials, int num_threads) {
  for_each_task(segs, num_segs, num_threads, [&](int64_t k, const Task& t, const MRSegment& seg) {
    const bool has_out = seg.grad_out != nullptr;
    if (l2 && has_out) partials[k] = mr_range<true, true>(seg, t.begin, t.end, parent, coef);
    else if (l2) partials[k] = mr_range<true, false>(seg, t.begin, t.end, parent, coef);
    else if (has_out) partials[k] = mr_range<false, true>(seg, t.begin, t.end, parent, coef);
    else partials[k] = mr_range<false, false>(seg, t.begin, t.end, parent, coef);
  });
}

}  // namespace hml
