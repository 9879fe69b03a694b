#include "adamas/core/quest.h"

#include <algorithm>

#include "common/check.h"

namespace adamas {

void quest_page_scores(const float* q, int nq, const PagedMinMax& mm, bool sum_heads, float* out,
                       size_t out_stride) {
  ADAMAS_CHECK(nq >= 1, "quest needs at least one query head, got nq = {}", nq);
  ADAMAS_CHECK(mm.page_size >= 1 && mm.length >= 0, "bad quest view: page_size {}, length {}",
               mm.page_size, mm.length);
  const int pages = (mm.length + mm.page_size - 1) / mm.page_size;
  const int d = mm.head_dim;
  if (sum_heads) std::fill(out, out + pages, 0.0f);
  for (int pi = 0; pi < pages; ++pi) {
    const float* lo = mm.page_min(pi);
    const float* hi = mm.page_max(pi);
    for (int h = 0; h < nq; ++h) {
      const float* qh = q + h * d;
      float s = 0;
      for (int i = 0; i < d; ++i) s += std::max(qh[i] * lo[i], qh[i] * hi[i]);
      if (sum_heads) {
        out[pi] += s;
      } else {
        out[h * out_stride + pi] = s;
      }
    }
  }
}

}  // namespace adamas
