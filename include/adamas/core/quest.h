// Kernel contract: Quest's page score (baseline).
//
// For page j with channel-wise key minimum m and maximum M, and query q:
//   score(j) = Σ_i max(q_i · m_i, q_i · M_i)   ≥  q · k  for every key k in the page.
// out[h * out_stride + j] for query head h < nq and page j < ceil(length / page_size);
// sum_heads adds the heads' scores into one row.
#pragma once

#include <cstddef>

#include "adamas/core/paged_view.h"

namespace adamas {

void quest_page_scores(const float* q, int nq, const PagedMinMax& minmax, bool sum_heads,
                       float* out, size_t out_stride);

}  // namespace adamas
