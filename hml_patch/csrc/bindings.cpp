// Python bindings of the HML importance kernels (module hml_patch._C).
//
// Every entry point takes the parameter tensors as a list plus, for each, its offset in
// the flat state buffers, so no gradient or parameter is ever concatenated. Tensors on
// the CPU go to the OpenMP implementation, CUDA tensors to the CUDA one (when built).
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <optional>
#include <vector>

#include "importance.h"

#ifdef HML_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

void check_buffer(const at::Tensor& t, const at::Device& device, const char* name) {
  TORCH_CHECK(t.device() == device, name, " is on ", t.device(), ", expected ", device);
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_segment(const at::Tensor& t, const at::Device& device, int64_t offset, int64_t length,
                   const char* what, size_t index) {
  TORCH_CHECK(t.device() == device, what, " ", index, " is on ", t.device(), ", expected ", device);
  TORCH_CHECK(t.scalar_type() == at::kFloat, what, " ", index, " must be float32");
  TORCH_CHECK(t.is_contiguous(), what, " ", index, " must be contiguous");
  TORCH_CHECK(offset >= 0 && offset + t.numel() <= length, what, " ", index, " (offset ", offset, ", ",
              t.numel(), " elements) exceeds the state buffers (", length, " elements)");
}

std::vector<hml::Segment> make_segments(const std::vector<at::Tensor>& params,
                                        const std::vector<std::optional<at::Tensor>>& grads,
                                        const std::vector<int64_t>& offsets, const at::Tensor& fisher) {
  TORCH_CHECK(params.size() == grads.size() && params.size() == offsets.size(),
              "params, grads and offsets must have the same length");
  std::vector<hml::Segment> segs;
  segs.reserve(params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    check_segment(params[k], fisher.device(), offsets[k], fisher.numel(), "parameter", k);
    const float* grad = nullptr;
    if (grads[k].has_value() && grads[k]->defined()) {
      const at::Tensor& g = *grads[k];
      TORCH_CHECK(g.numel() == params[k].numel(), "gradient ", k, " has ", g.numel(), " elements, parameter has ",
                  params[k].numel());
      check_segment(g, fisher.device(), offsets[k], fisher.numel(), "gradient", k);
      grad = g.data_ptr<float>();
    }
    segs.push_back({params[k].data_ptr<float>(), grad, offsets[k], params[k].numel()});
  }
  return segs;
}

std::vector<hml::MRSegment> make_mr_segments(const std::vector<at::Tensor>& params,
                                             const std::vector<std::optional<at::Tensor>>& outs,
                                             const std::vector<int64_t>& offsets, const at::Tensor& parent_fisher) {
  TORCH_CHECK(params.size() == offsets.size(), "params and offsets must have the same length");
  TORCH_CHECK(outs.empty() || outs.size() == params.size(), "outputs and params must have the same length");
  std::vector<hml::MRSegment> segs;
  segs.reserve(params.size());
  for (size_t k = 0; k < params.size(); ++k) {
    check_segment(params[k], parent_fisher.device(), offsets[k], parent_fisher.numel(), "parameter", k);
    float* out = nullptr;
    if (!outs.empty() && outs[k].has_value() && outs[k]->defined()) {
      const at::Tensor& o = *outs[k];
      TORCH_CHECK(o.numel() == params[k].numel(), "output ", k, " has the wrong size");
      check_segment(o, parent_fisher.device(), offsets[k], parent_fisher.numel(), "output", k);
      out = o.data_ptr<float>();
    }
    segs.push_back({params[k].data_ptr<float>(), out, offsets[k], params[k].numel()});
  }
  return segs;
}

hml::ParentBuffers parent_buffers(const at::Tensor& fisher, const at::Tensor& omega, const at::Tensor& theta) {
  TORCH_CHECK(fisher.numel() == omega.numel() && fisher.numel() == theta.numel(),
              "parent buffers must have the same length");
  check_buffer(fisher, fisher.device(), "parent_fisher");
  check_buffer(omega, fisher.device(), "parent_omega");
  check_buffer(theta, fisher.device(), "parent_theta");
  return {fisher.data_ptr<float>(), omega.data_ptr<float>(), theta.data_ptr<float>()};
}

hml::StateBuffers state_buffers(const at::Tensor& fisher, const at::Tensor& omega, const at::Tensor& theta_prev,
                                const std::optional<at::Tensor>& pending) {
  TORCH_CHECK(fisher.numel() == omega.numel() && fisher.numel() == theta_prev.numel(),
              "state buffers must have the same length");
  check_buffer(fisher, fisher.device(), "fisher");
  check_buffer(omega, fisher.device(), "omega");
  check_buffer(theta_prev, fisher.device(), "theta_prev");
  float* pending_ptr = nullptr;
  if (pending.has_value()) {
    TORCH_CHECK(pending->numel() == fisher.numel(), "pending must have the same length as fisher");
    check_buffer(*pending, fisher.device(), "pending");
    pending_ptr = pending->data_ptr<float>();
  }
  return {fisher.data_ptr<float>(), omega.data_ptr<float>(), theta_prev.data_ptr<float>(), pending_ptr};
}

// The MR fusion of a step (factor == nullptr when mr_factor is not given) and the tensor its
// partial sums go to.
struct Fusion {
  hml::MRFusion mr;
  at::Tensor partials;
};

Fusion mr_fusion(const std::vector<hml::Segment>& segs, const at::Tensor& fisher,
                 const std::optional<at::Tensor>& mr_factor, const std::optional<at::Tensor>& parent_fisher,
                 const std::optional<at::Tensor>& parent_omega, const std::optional<at::Tensor>& parent_theta,
                 bool l2, double coef) {
  if (!mr_factor.has_value()) return {{{nullptr, nullptr, nullptr}, nullptr, l2, 0.0f}, at::Tensor()};
  TORCH_CHECK(parent_fisher.has_value() && parent_omega.has_value() && parent_theta.has_value(),
              "mr_factor needs parent_fisher, parent_omega and parent_theta");
  TORCH_CHECK(mr_factor->numel() == fisher.numel() && parent_fisher->numel() == fisher.numel(),
              "mr_factor and the parent buffers must have the state's length");
  check_buffer(*mr_factor, fisher.device(), "mr_factor");
  const hml::ParentBuffers parent = parent_buffers(*parent_fisher, *parent_omega, *parent_theta);
  check_buffer(*parent_fisher, fisher.device(), "parent_fisher");
  const int64_t count = hml::num_pieces(segs.data(), static_cast<int64_t>(segs.size()));
  return {{parent, mr_factor->data_ptr<float>(), l2, static_cast<float>(coef)},
          at::zeros({count}, fisher.options().dtype(at::kDouble))};
}

// The MR sum from its partials: in order on the CPU, torch's sum on CUDA (as mr_forward).
at::Tensor sum_partials(const at::Tensor& partials) {
  if (partials.is_cuda()) return partials.sum();
  const double* p = partials.data_ptr<double>();
  double total = 0.0;
  for (int64_t k = 0; k < partials.numel(); ++k) total += p[k];
  return at::scalar_tensor(total, partials.options());
}

double* partials_ptr(const Fusion& fusion) {
  return fusion.partials.defined() ? fusion.partials.data_ptr<double>() : nullptr;
}

std::optional<at::Tensor> fusion_total(const Fusion& fusion) {
  if (!fusion.partials.defined()) return std::nullopt;
  return sum_partials(fusion.partials);
}

#ifdef HML_WITH_CUDA
void* current_stream(const at::Device& device) {
  return static_cast<void*>(c10::cuda::getCurrentCUDAStream(device.index()).stream());
}
#endif

void require_cuda_build(const at::Device& device) {
#ifndef HML_WITH_CUDA
  TORCH_CHECK(!device.is_cuda(), "hml_patch._C was built without CUDA");
#endif
  TORCH_CHECK(device.is_cpu() || device.is_cuda(), "unsupported device ", device);
}

hml::FisherArgs fisher_args(double grad_scale, double fisher_a, double fisher_b, bool clamp_square) {
  return {static_cast<float>(grad_scale), static_cast<float>(fisher_a), static_cast<float>(fisher_b), clamp_square};
}

std::optional<at::Tensor> paper_step(
    const std::vector<at::Tensor>& params, const std::vector<std::optional<at::Tensor>>& grads,
    const std::vector<int64_t>& offsets, at::Tensor fisher, at::Tensor omega, at::Tensor theta_prev,
    at::Tensor pending, bool commit, double grad_scale, double fisher_a, double fisher_b, bool clamp_square,
    double eps, const std::optional<at::Tensor>& mr_factor, const std::optional<at::Tensor>& parent_fisher,
    const std::optional<at::Tensor>& parent_omega, const std::optional<at::Tensor>& parent_theta, bool l2,
    double coef) {
  const at::Device device = fisher.device();
  require_cuda_build(device);
  const auto segs = make_segments(params, grads, offsets, fisher);
  const hml::StateBuffers buf = state_buffers(fisher, omega, theta_prev, pending);
  const hml::PaperArgs args{fisher_args(grad_scale, fisher_a, fisher_b, clamp_square), commit,
                            static_cast<float>(eps)};
  const Fusion fusion = mr_fusion(segs, fisher, mr_factor, parent_fisher, parent_omega, parent_theta, l2, coef);
  if (device.is_cpu()) {
    hml::paper_step_cpu(segs.data(), static_cast<int64_t>(segs.size()), buf, args, fusion.mr, partials_ptr(fusion),
                        at::get_num_threads());
    return fusion_total(fusion);
  }
#ifdef HML_WITH_CUDA
  const c10::cuda::CUDAGuard guard(device);
  const std::string err = hml::paper_step_cuda(segs.data(), static_cast<int64_t>(segs.size()), buf, args,
                                               fusion.mr, partials_ptr(fusion), current_stream(device));
  TORCH_CHECK(err.empty(), "paper_step CUDA launch failed: ", err);
#endif
  return fusion_total(fusion);
}

std::optional<at::Tensor> official_step(
    const std::vector<at::Tensor>& params, const std::vector<std::optional<at::Tensor>>& grads,
    const std::vector<int64_t>& offsets, at::Tensor fisher, at::Tensor omega, at::Tensor theta_prev,
    double grad_scale, double fisher_a, double fisher_b, bool clamp_square,
    const std::optional<at::Tensor>& mr_factor, const std::optional<at::Tensor>& parent_fisher,
    const std::optional<at::Tensor>& parent_omega, const std::optional<at::Tensor>& parent_theta, bool l2,
    double coef) {
  const at::Device device = fisher.device();
  require_cuda_build(device);
  const auto segs = make_segments(params, grads, offsets, fisher);
  const hml::StateBuffers buf = state_buffers(fisher, omega, theta_prev, std::nullopt);
  const hml::FisherArgs args = fisher_args(grad_scale, fisher_a, fisher_b, clamp_square);
  const Fusion fusion = mr_fusion(segs, fisher, mr_factor, parent_fisher, parent_omega, parent_theta, l2, coef);
  if (device.is_cpu()) {
    hml::official_step_cpu(segs.data(), static_cast<int64_t>(segs.size()), buf, args, fusion.mr,
                           partials_ptr(fusion), at::get_num_threads());
    return fusion_total(fusion);
  }
#ifdef HML_WITH_CUDA
  const c10::cuda::CUDAGuard guard(device);
  const std::string err = hml::official_step_cuda(segs.data(), static_cast<int64_t>(segs.size()), buf, args,
                                                  fusion.mr, partials_ptr(fusion), current_stream(device));
  TORCH_CHECK(err.empty(), "official_step CUDA launch failed: ", err);
#endif
  return fusion_total(fusion);
}

at::Tensor mr_forward(const std::vector<at::Tensor>& params, const std::vector<std::optional<at::Tensor>>& outs,
                      const std::vector<int64_t>& offsets, const at::Tensor& parent_fisher,
                      const at::Tensor& parent_omega, const at::Tensor& parent_theta, bool l2, double coef) {
  const at::Device device = parent_fisher.device();
  require_cuda_build(device);
  const auto segs = make_mr_segments(params, outs, offsets, parent_fisher);
  const hml::ParentBuffers parent = parent_buffers(parent_fisher, parent_omega, parent_theta);
  const int64_t count = hml::num_pieces(segs.data(), static_cast<int64_t>(segs.size()));
  at::Tensor partials = at::zeros({count}, parent_fisher.options().dtype(at::kDouble));
  const float coef_f = static_cast<float>(coef);
  if (device.is_cpu()) {
    hml::mr_forward_cpu(segs.data(), static_cast<int64_t>(segs.size()), parent, l2, coef_f,
                        partials.data_ptr<double>(), at::get_num_threads());
    return sum_partials(partials);
  }
#ifdef HML_WITH_CUDA
  const c10::cuda::CUDAGuard guard(device);
  const std::string err = hml::mr_forward_cuda(segs.data(), static_cast<int64_t>(segs.size()), parent, l2, coef_f,
                                               partials.data_ptr<double>(), current_stream(device));
  TORCH_CHECK(err.empty(), "mr_forward CUDA launch failed: ", err);
#endif
  return sum_partials(partials);
}

bool has_cuda() {
#ifdef HML_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "HML importance state: fused per-step Fisher/Omega update and MR penalty (CPU OpenMP, CUDA)";
  m.def("has_cuda", &has_cuda, "whether the CUDA kernels were compiled in");
  // Both steps optionally fuse the MR gradient at the updated parameters: given mr_factor and
  // the parent buffers, they write the gradient factors into mr_factor and return the MR sum
  // (float64 scalar tensor, as mr_forward); otherwise they return None.
  m.def("paper_step", &paper_step, "paper rule: commit the gated pending term, update F, new pending term",
        py::arg("params"), py::arg("grads"), py::arg("offsets"), py::arg("fisher"), py::arg("omega"),
        py::arg("theta_prev"), py::arg("pending"), py::arg("commit"), py::arg("grad_scale"), py::arg("fisher_a"),
        py::arg("fisher_b"), py::arg("clamp_square"), py::arg("eps"), py::arg("mr_factor") = py::none(),
        py::arg("parent_fisher") = py::none(), py::arg("parent_omega") = py::none(),
        py::arg("parent_theta") = py::none(), py::arg("l2") = true, py::arg("coef") = 0.0);
  m.def("official_step", &official_step, "authors' rule: update F, add 2 max(g d, 1e-15) / max(F d^2, 1e-20)",
        py::arg("params"), py::arg("grads"), py::arg("offsets"), py::arg("fisher"), py::arg("omega"),
        py::arg("theta_prev"), py::arg("grad_scale"), py::arg("fisher_a"), py::arg("fisher_b"),
        py::arg("clamp_square"), py::arg("mr_factor") = py::none(), py::arg("parent_fisher") = py::none(),
        py::arg("parent_omega") = py::none(), py::arg("parent_theta") = py::none(), py::arg("l2") = true,
        py::arg("coef") = 0.0);
  m.def("mr_forward", &mr_forward,
        "sum of (F+Omega)*D over all parameters (float64 scalar tensor); gradient factors into outs if given");
}
