// Backend-neutral page bookkeeping of a paged KV cache: which pages each sequence owns and how
// many tokens each layer of it holds. No K/V bytes live here; the CPU cache (paged_kv_cache.h)
// and the GPU cache (cuda/device_cache.h) keep their pools and share this logic.
//
// One page table per sequence, shared by every layer: page table entry i holds the sequence's
// tokens [i·P, (i+1)·P) in every layer. Layers may lag behind one another (a prefill chunk runs
// layer by layer), so each layer has its own length; the table covers the longest layer.
// Pages come from one free list (a stack: low ids first on a fresh pool). Growth never moves data.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "adamas/cache/cache_config.h"

namespace adamas {

// A ragged batch as a CSR page table (FlashInfer's convention, block tables of vLLM flattened):
// sequence b's pages are page_indices[page_indptr[b] .. page_indptr[b + 1]), its length lengths[b].
// BatchTables holds them on the host; a backend copies them to its memory in one piece and
// kernels read them through a BatchView.
struct BatchView {
  const int32_t* page_indptr = nullptr;   // [batch + 1]
  const int32_t* page_indices = nullptr;  // [page_indptr[batch]]
  const int32_t* lengths = nullptr;       // [batch], each ≥ 1
  int batch = 0;
  int max_length = 0;  // host-side bound on every length: sizes grids and workspaces

  void validate() const;  // non-null arrays, batch ≥ 1, max_length ≥ 1 (names the field)
};

struct BatchTables {
  std::vector<int32_t> page_indptr;   // [batch + 1]
  std::vector<int32_t> page_indices;  // [page_indptr[batch]]
  std::vector<int32_t> lengths;       // [batch]
  int max_length = 0;
  int batch() const { return static_cast<int>(lengths.size()); }
  BatchView view() const {  // over the host vectors (the CPU backend, tests)
    return {page_indptr.data(), page_indices.data(), lengths.data(), batch(), max_length};
  }
};

class PageTables {
 public:
  PageTables(int num_layers, int num_pages, int page_size);

  int num_layers() const { return num_layers_; }
  int num_pages() const { return num_pages_; }
  int page_size() const { return page_size_; }
  int free_pages() const { return static_cast<int>(free_.size()); }
  // Pages needed to hold `tokens` tokens of one sequence.
  int64_t pages_for(int64_t tokens) const { return (tokens + page_size_ - 1) / page_size_; }

  SeqId add_sequence();
  // Frees the sequence's pages; its id is not reused. Unknown or removed ids throw.
  void remove_sequence(SeqId seq);
  bool alive(SeqId seq) const;
  // Ids of the live sequences, ascending.
  std::vector<SeqId> live_sequences() const;

  int length(int layer, SeqId seq) const;
  // Longest layer of the sequence.
  int max_length(SeqId seq) const;
  std::span<const int32_t> pages(SeqId seq) const;

  // Takes the pages `seq` needs to hold `tokens` tokens (a no-op when it has them; never shrinks).
  // A short pool throws adamas::Error naming the shortfall and takes nothing.
  void reserve(SeqId seq, int64_t tokens);
  // reserve() for several sequences at once, all or nothing: tokens[i] for seqs[i] (a sequence
  // listed twice needs its larger count). Every id and count is checked, and the pages needed
  // together are counted, before any page is taken.
  void reserve(std::span<const SeqId> seqs, std::span<const int64_t> tokens);
  // Gives back pages past the first `pages`, last page first, so that the free list is as it was
  // before the reserve it undoes (a reserve whose use failed). Throws when `pages` exceeds what
  // the sequence holds or would drop pages holding stored tokens (truncate does that).
  void rollback(SeqId seq, size_t pages);
  // Sets a layer's length (after its tokens were written): 0 ≤ length ≤ reserved pages · P.
  void set_length(int layer, SeqId seq, int length);
  // Shortens every layer to at most `length` tokens and frees the pages no longer used.
  void truncate(SeqId seq, int length);

  // Global slot (page · page_size + slot) of token `position` of the sequence (page reserved).
  int32_t slot(SeqId seq, int64_t position) const;
  // The CSR tables of `seqs` (in that order) with each sequence's length in `layer`, or
  // length + extra (a decode step's lengths once its token is appended: pages must be reserved).
  // Sequence b's entries are the pages its length uses (ceil(length / P)), not its whole table.
  // Every length must be ≥ 1 and seqs non-empty; an id may appear more than once.
  BatchTables batch(std::span<const SeqId> seqs, int layer, int extra = 0) const;
  // Same, writing into `out` (reuses its vectors' capacity: no allocation once warm).
  void batch(std::span<const SeqId> seqs, int layer, int extra, BatchTables& out) const;

 private:
  struct Sequence {
    bool alive = true;
    std::vector<int32_t> pages;
    std::vector<int> lengths;  // [layer]
  };
  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;
  void check_layer(int layer) const;

  int num_layers_, num_pages_, page_size_;
  bool slots_fit_ = true;  // num_pages · page_size ≤ INT32_MAX: slot() fits 32 bits
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_;
};

}  // namespace adamas
