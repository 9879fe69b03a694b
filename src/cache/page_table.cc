#include "adamas/cache/page_table.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "common/check.h"

namespace adamas {

void BatchView::validate() const {
  ADAMAS_CHECK(batch >= 1, "batch view: batch must be ≥ 1, got {}", batch);
  ADAMAS_CHECK(page_indptr != nullptr, "batch view: null page_indptr (batch + 1 offsets needed)");
  ADAMAS_CHECK(page_indices != nullptr, "batch view: null page_indices");
  ADAMAS_CHECK(lengths != nullptr, "batch view: null lengths");
  ADAMAS_CHECK(max_length >= 1, "batch view: max_length must be ≥ 1, got {}", max_length);
}

PageTables::PageTables(int num_layers, int num_pages, int page_size)
    : num_layers_(num_layers), num_pages_(num_pages), page_size_(page_size) {
  ADAMAS_CHECK(num_layers >= 1, "num_layers must be ≥ 1, got {}", num_layers);
  ADAMAS_CHECK(num_pages >= 1, "num_pages must be ≥ 1, got {}", num_pages);
  ADAMAS_CHECK(page_size >= 1, "page_size must be ≥ 1, got {}", page_size);
  slots_fit_ = int64_t{num_pages} * page_size <= std::numeric_limits<int32_t>::max();
  free_.resize(num_pages);
  // Hand out low page ids first (free_ is used as a stack).
  for (int i = 0; i < num_pages; ++i) free_[i] = num_pages - 1 - i;
}

PageTables::Sequence& PageTables::get(SeqId seq) {
  ADAMAS_CHECK(seq >= 0 && static_cast<size_t>(seq) < seqs_.size(),
               "unknown sequence id {} (ids 0 .. {} were handed out)", seq,
               static_cast<int64_t>(seqs_.size()) - 1);
  ADAMAS_CHECK(seqs_[seq].alive,
               "removed sequence id {}: its pages were freed (ids are not reused)", seq);
  return seqs_[seq];
}
const PageTables::Sequence& PageTables::get(SeqId seq) const {
  return const_cast<PageTables*>(this)->get(seq);
}

void PageTables::check_layer(int layer) const {
  ADAMAS_CHECK(layer >= 0 && layer < num_layers_, "layer {} out of range [0, {})", layer,
               num_layers_);
}

SeqId PageTables::add_sequence() {
  ADAMAS_CHECK(seqs_.size() < static_cast<size_t>(std::numeric_limits<SeqId>::max()),
               "too many sequences: {} ids were handed out", seqs_.size());
  Sequence s;
  s.lengths.assign(num_layers_, 0);
  seqs_.push_back(std::move(s));
  return static_cast<SeqId>(seqs_.size() - 1);
}

void PageTables::remove_sequence(SeqId seq) {
  Sequence& s = get(seq);
  // Pushed last page first, so that the sequence's first page is the next one taken.
  for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) free_.push_back(*it);
  s.pages.clear();
  s.pages.shrink_to_fit();
  s.lengths.assign(num_layers_, 0);
  s.alive = false;
}

bool PageTables::alive(SeqId seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[seq].alive;
}

std::vector<SeqId> PageTables::live_sequences() const {
  std::vector<SeqId> out;
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (seqs_[i].alive) out.push_back(static_cast<SeqId>(i));
  return out;
}

int PageTables::length(int layer, SeqId seq) const {
  check_layer(layer);
  return get(seq).lengths[layer];
}

int PageTables::max_length(SeqId seq) const {
  const Sequence& s = get(seq);
  return *std::max_element(s.lengths.begin(), s.lengths.end());
}

std::span<const int32_t> PageTables::pages(SeqId seq) const { return get(seq).pages; }

void PageTables::reserve(SeqId seq, int64_t tokens) {
  Sequence& s = get(seq);
  ADAMAS_CHECK(tokens >= 0, "reserve: sequence {} cannot hold {} tokens", seq, tokens);
  const int64_t need = pages_for(tokens);
  const int64_t have = static_cast<int64_t>(s.pages.size());
  if (need <= have) return;
  const int64_t extra = need - have;
  ADAMAS_CHECK(extra <= free_pages(),
               "KV cache is full: sequence {} needs {} more pages of {} tokens to hold {} tokens, "
               "but only {} of {} pages are free ({} short)",
               seq, extra, page_size_, tokens, free_pages(), num_pages_, extra - free_pages());
  for (int64_t i = 0; i < extra; ++i) {
    s.pages.push_back(free_.back());
    free_.pop_back();
  }
}

void PageTables::reserve(std::span<const SeqId> seqs, std::span<const int64_t> tokens) {
  ADAMAS_CHECK(seqs.size() == tokens.size(),
               "reserve: {} sequences but {} token counts (one per sequence)", seqs.size(),
               tokens.size());
  // Largest count per distinct sequence (a sequence may be listed more than once), then the pages
  // they need together: all checked before any page is taken.
  std::vector<std::pair<SeqId, int64_t>> want(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    get(seqs[i]);  // unknown or removed ids throw here
    ADAMAS_CHECK(tokens[i] >= 0, "reserve: sequence {} cannot hold {} tokens", seqs[i], tokens[i]);
    want[i] = {seqs[i], tokens[i]};
  }
  std::sort(want.begin(), want.end());
  int64_t extra = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (i + 1 < want.size() && want[i + 1].first == want[i].first) continue;  // not the largest
    const int64_t have = static_cast<int64_t>(get(want[i].first).pages.size());
    extra += std::max<int64_t>(0, pages_for(want[i].second) - have);
  }
  ADAMAS_CHECK(extra <= free_pages(),
               "KV cache is full: the batch of {} sequences needs {} more pages of {} tokens, but "
               "only {} of {} pages are free ({} short); no page was taken",
               seqs.size(), extra, page_size_, free_pages(), num_pages_, extra - free_pages());
  for (size_t i = 0; i < seqs.size(); ++i) reserve(seqs[i], tokens[i]);  // cannot fail now
}

void PageTables::rollback(SeqId seq, size_t pages) {
  Sequence& s = get(seq);
  ADAMAS_CHECK(pages <= s.pages.size(),
               "rollback: sequence {} holds {} pages, cannot roll back to {} pages", seq,
               s.pages.size(), pages);
  const int longest = *std::max_element(s.lengths.begin(), s.lengths.end());
  ADAMAS_CHECK(
      static_cast<int64_t>(pages) >= pages_for(longest),
      "rollback: sequence {} holds {} tokens in {} pages; keeping only {} pages would drop "
      "stored tokens (truncate it instead)",
      seq, longest, pages_for(longest), pages);
  // Last page first: the free list is exactly as it was before the reserve.
  while (s.pages.size() > pages) {
    free_.push_back(s.pages.back());
    s.pages.pop_back();
  }
}

void PageTables::set_length(int layer, SeqId seq, int length) {
  check_layer(layer);
  Sequence& s = get(seq);
  const int64_t capacity = static_cast<int64_t>(s.pages.size()) * page_size_;
  ADAMAS_CHECK(length >= 0 && length <= capacity,
               "set_length: layer {} of sequence {} cannot hold {} tokens: it must be in [0, {}] "
               "({} pages of {} reserved; reserve first)",
               layer, seq, length, capacity, s.pages.size(), page_size_);
  s.lengths[layer] = length;
}

void PageTables::truncate(SeqId seq, int length) {
  Sequence& s = get(seq);
  ADAMAS_CHECK(length >= 0, "cannot truncate sequence {} to {} tokens (must be ≥ 0)", seq, length);
  int longest = 0;
  for (int& l : s.lengths) {
    l = std::min(l, length);
    longest = std::max(longest, l);
  }
  const size_t keep = static_cast<size_t>(pages_for(longest));
  while (s.pages.size() > keep) {
    free_.push_back(s.pages.back());
    s.pages.pop_back();
  }
}

int32_t PageTables::slot(SeqId seq, int64_t position) const {
  const Sequence& s = get(seq);
  const int64_t capacity = static_cast<int64_t>(s.pages.size()) * page_size_;
  ADAMAS_CHECK(position >= 0 && position < capacity,
               "slot: position {} of sequence {} must be in [0, {}) ({} pages of {} reserved)",
               position, seq, capacity, s.pages.size(), page_size_);
  ADAMAS_CHECK(slots_fit_,
               "slot: {} pages of {} tokens have more slots than a 32-bit slot index can address",
               num_pages_, page_size_);
  return static_cast<int32_t>(int64_t{s.pages[position / page_size_]} * page_size_ +
                              position % page_size_);
}

BatchTables PageTables::batch(std::span<const SeqId> seqs, int layer, int extra) const {
  BatchTables out;
  batch(seqs, layer, extra, out);
  return out;
}

void PageTables::batch(std::span<const SeqId> seqs, int layer, int extra, BatchTables& out) const {
  check_layer(layer);
  ADAMAS_CHECK(!seqs.empty(), "a batch needs at least one sequence");
  ADAMAS_CHECK(extra >= 0, "batch: extra tokens must be ≥ 0, got {}", extra);
  out.page_indptr.clear();
  out.page_indices.clear();
  out.lengths.clear();
  out.max_length = 0;
  out.page_indptr.push_back(0);
  for (SeqId id : seqs) {
    const Sequence& s = get(id);
    const int64_t len = int64_t{s.lengths[layer]} + extra;
    ADAMAS_CHECK(len >= 1, "sequence {} has no tokens in layer {}", id, layer);
    ADAMAS_CHECK(len <= std::numeric_limits<int32_t>::max(),
                 "sequence {}: {} tokens in layer {} do not fit 32 bits", id, len, layer);
    const int64_t used = pages_for(len);
    ADAMAS_CHECK(used <= static_cast<int64_t>(s.pages.size()),
                 "batch: sequence {} with {} tokens in layer {} (+{}) needs {} pages but holds {} "
                 "(reserve first)",
                 id, s.lengths[layer], layer, extra, used, s.pages.size());
    out.page_indices.insert(out.page_indices.end(), s.pages.begin(), s.pages.begin() + used);
    ADAMAS_CHECK(
        out.page_indices.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
        "batch: more than 2^31 - 1 page entries");
    out.page_indptr.push_back(static_cast<int32_t>(out.page_indices.size()));
    out.lengths.push_back(static_cast<int32_t>(len));
    out.max_length = std::max(out.max_length, static_cast<int>(len));
  }
}

}  // namespace adamas
