#include "adamas/core/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "common/check.h"
#include "core/topk_checks.h"

namespace adamas {

int check_topk_args(int n, int k, int32_t* out) {
  ADAMAS_CHECK(k >= 0, "top-k budget must be ≥ 0, got {}", k);
  ADAMAS_CHECK(n >= 0, "top-k input length must be ≥ 0, got {}", n);
  if (k >= n) {
    std::iota(out, out + n, 0);
    return n;
  }
  return -1;
}

namespace {

float sortable(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

}  // namespace

int select_largest(const float* values, int n, int k, int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  if (k == 0) return 0;
  thread_local std::vector<int32_t> idx;
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [values](int32_t a, int32_t b) {
    const float va = sortable(values[a]), vb = sortable(values[b]);
    return va > vb || (va == vb && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), better);
  std::sort(idx.begin(), idx.begin() + k);
  std::copy(idx.begin(), idx.begin() + k, out);
  return k;
}

namespace ref {

int select_smallest(const uint16_t* values, int n, int k, int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [values](int32_t a, int32_t b) { return values[a] < values[b]; });
  std::sort(idx.begin(), idx.begin() + k);
  std::copy(idx.begin(), idx.begin() + k, out);
  return k;
}

int select_largest(const float* values, int n, int k, int32_t* out) {
  if (int all = check_topk_args(n, k, out); all >= 0) return all;
  std::vector<int32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [values](int32_t a, int32_t b) {
    return sortable(values[a]) > sortable(values[b]);
  });
  std::sort(idx.begin(), idx.begin() + k);
  std::copy(idx.begin(), idx.begin() + k, out);
  return k;
}

}  // namespace ref
}  // namespace adamas
