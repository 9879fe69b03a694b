// page_table.h: PageTables reserves exactly the pages a sequence needs (low ids first), batch
// reserves are all or nothing, rollback and truncate give pages back (every layer shortened),
// set_length and slot() bounds, the CSR tables of ragged batches (1-token sequences, lengths not a
// multiple of the page size, extra = 1), BatchView::validate, and errors for unknown or removed
// ids that name the id.
#include "adamas/cache/page_table.h"

#include <set>

#include "test_util.h"

namespace adamas::test {
namespace {

std::vector<int32_t> pages_of(const PageTables& t, SeqId s) {
  const auto p = t.pages(s);
  return {p.begin(), p.end()};
}

// Every page is owned by at most one live sequence or free, and all are accounted for.
void expect_pages_accounted(const PageTables& t) {
  std::set<int32_t> seen;
  size_t owned = 0;
  for (SeqId s : t.live_sequences())
    for (int32_t p : t.pages(s)) {
      ASSERT_GE(p, 0);
      ASSERT_LT(p, t.num_pages());
      ASSERT_TRUE(seen.insert(p).second) << "page " << p << " owned twice";
      ++owned;
    }
  EXPECT_EQ(owned + static_cast<size_t>(t.free_pages()), static_cast<size_t>(t.num_pages()));
}

TEST(PageTables, ReserveTakesExactlyThePagesNeededLowIdsFirst) {
  PageTables t(2, 10, 4);
  EXPECT_EQ(t.num_layers(), 2);
  EXPECT_EQ(t.num_pages(), 10);
  EXPECT_EQ(t.page_size(), 4);
  EXPECT_EQ(t.free_pages(), 10);
  EXPECT_EQ(t.pages_for(0), 0);
  EXPECT_EQ(t.pages_for(1), 1);
  EXPECT_EQ(t.pages_for(4), 1);
  EXPECT_EQ(t.pages_for(5), 2);
  const SeqId a = t.add_sequence(), b = t.add_sequence();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_TRUE(t.alive(a));
  EXPECT_EQ(t.length(0, a), 0);
  EXPECT_EQ(t.length(1, a), 0);
  EXPECT_TRUE(t.pages(a).empty());
  t.reserve(a, 0);  // nothing needed
  EXPECT_EQ(t.free_pages(), 10);
  t.reserve(a, 1);
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0}));
  t.reserve(a, 4);  // still one page
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0}));
  t.reserve(a, 9);  // three pages
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1, 2}));
  t.reserve(a, 2);  // never shrinks
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1, 2}));
  t.reserve(b, 5);
  EXPECT_EQ(pages_of(t, b), (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(t.free_pages(), 5);
  // Reserving sets no length.
  EXPECT_EQ(t.length(0, a), 0);
  EXPECT_EQ(t.max_length(a), 0);
  expect_pages_accounted(t);
}

TEST(PageTables, ShortPoolThrowsNamingTheShortfallAndTakesNothing) {
  PageTables t(1, 5, 8);
  const SeqId a = t.add_sequence(), b = t.add_sequence();
  t.reserve(a, 20);  // 3 pages
  t.set_length(0, a, 20);
  const auto before = pages_of(t, a);
  const std::string msg = error_message([&] { t.reserve(a, 8 * 6); });  // 6 pages: 3 more, 2 free
  EXPECT_THAT(msg, AllOf(HasSubstr("full"), HasSubstr("sequence 0"), HasSubstr("3 more pages"),
                         HasSubstr("only 2 of 5 pages are free"), HasSubstr("1 short")));
  EXPECT_EQ(pages_of(t, a), before);
  EXPECT_EQ(t.free_pages(), 2);
  EXPECT_EQ(t.length(0, a), 20);
  t.reserve(b, 16);  // exactly what is left
  EXPECT_EQ(t.free_pages(), 0);
  EXPECT_THAT(error_message([&] { t.reserve(b, 17); }), HasSubstr("full"));
  EXPECT_EQ(pages_of(t, b).size(), 2u);
  EXPECT_THAT(error_message([&] { t.reserve(b, -1); }),
              AllOf(HasSubstr("-1"), HasSubstr("tokens")));
  expect_pages_accounted(t);
}

TEST(PageTables, BatchReserveIsAllOrNothing) {
  PageTables t(2, 6, 4);
  const SeqId a = t.add_sequence(), b = t.add_sequence(), c = t.add_sequence();
  t.reserve(a, 4);
  t.set_length(0, a, 4);  // a's page is full: its next token needs a page
  t.reserve(b, 2);
  t.set_length(0, b, 2);  // b has room
  t.reserve(c, 12);       // 3 pages; 1 free left
  ASSERT_EQ(t.free_pages(), 1);
  const auto pa = pages_of(t, a), pb = pages_of(t, b), pc = pages_of(t, c);
  // a needs 1 more and c needs 2 more (20 tokens = 5 pages), 1 free: nothing is taken.
  const std::vector<SeqId> seqs = {a, b, c};
  const std::vector<int64_t> tokens = {5, 3, 20};
  const std::string msg = error_message([&] { t.reserve(seqs, tokens); });
  EXPECT_THAT(msg, AllOf(HasSubstr("full"), HasSubstr("3 more pages"),
                         HasSubstr("only 1 of 6 pages are free"), HasSubstr("2 short")));
  EXPECT_EQ(pages_of(t, a), pa);
  EXPECT_EQ(pages_of(t, b), pb);
  EXPECT_EQ(pages_of(t, c), pc);
  EXPECT_EQ(t.free_pages(), 1);
  // What fits is taken for every sequence.
  const std::vector<int64_t> fits = {5, 3, 12};
  t.reserve(seqs, fits);
  EXPECT_EQ(pages_of(t, a).size(), 2u);
  EXPECT_EQ(pages_of(t, b), pb);
  EXPECT_EQ(pages_of(t, c), pc);
  EXPECT_EQ(t.free_pages(), 0);
  // A sequence listed twice needs the pages of its larger count, once.
  t.remove_sequence(c);  // 3 free
  const std::vector<SeqId> twice = {b, a, b};
  EXPECT_THAT(error_message([&] {
                t.reserve(twice, std::vector<int64_t>{3, 9, 17});
              }),
              AllOf(HasSubstr("full"), HasSubstr("5 more pages"), HasSubstr("2 short")));
  EXPECT_EQ(t.free_pages(), 3);
  t.reserve(twice, std::vector<int64_t>{9, 9, 5});  // a: 1 more, b: 2 more
  EXPECT_EQ(pages_of(t, a).size(), 3u);
  EXPECT_EQ(pages_of(t, b).size(), 3u);
  EXPECT_EQ(t.free_pages(), 0);
  // Mismatched spans, unknown ids and negative counts throw before anything is taken.
  EXPECT_THAT(error_message([&] { t.reserve(seqs, std::vector<int64_t>{1}); }),
              AllOf(HasSubstr("3 sequences"), HasSubstr("1 token counts")));
  EXPECT_THAT(error_message([&] {
                t.reserve(std::vector<SeqId>{a, 9}, std::vector<int64_t>{1, 1});
              }),
              AllOf(HasSubstr("unknown sequence id 9")));
  EXPECT_THAT(error_message([&] {
                t.reserve(std::vector<SeqId>{a, b}, std::vector<int64_t>{1, -2});
              }),
              HasSubstr("-2"));
  expect_pages_accounted(t);
}

TEST(PageTables, RollbackReturnsPagesAndRestoresTheFreeList) {
  PageTables t(1, 8, 4);
  const SeqId a = t.add_sequence(), b = t.add_sequence();
  t.reserve(a, 6);  // pages 0, 1
  t.set_length(0, a, 6);
  const size_t before = t.pages(a).size();
  t.reserve(a, 6 + 9);  // 2 more: 2, 3
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1, 2, 3}));
  t.rollback(a, before);
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(t.free_pages(), 6);
  EXPECT_EQ(t.length(0, a), 6);
  // The free list is as it was: the next reserve takes the same pages in the same order.
  t.reserve(b, 8);
  EXPECT_EQ(pages_of(t, b), (std::vector<int32_t>{2, 3}));
  t.rollback(a, before);  // nothing to give back: no-op
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1}));
  // Rolling back below the stored tokens, or beyond what is held, throws.
  EXPECT_THAT(error_message([&] { t.rollback(a, 1); }),
              AllOf(HasSubstr("sequence 0"), HasSubstr("6 tokens"), HasSubstr("truncate")));
  EXPECT_THAT(error_message([&] { t.rollback(a, 5); }),
              AllOf(HasSubstr("holds 2 pages"), HasSubstr("5")));
  expect_pages_accounted(t);
}

TEST(PageTables, TruncateFreesPagesAndShortensEveryLayer) {
  PageTables t(3, 10, 4);
  const SeqId a = t.add_sequence();
  t.reserve(a, 30);  // 8 pages
  t.set_length(0, a, 30);
  t.set_length(1, a, 13);
  t.set_length(2, a, 3);
  EXPECT_EQ(t.max_length(a), 30);
  t.truncate(a, 40);  // longer than every layer: nothing changes
  EXPECT_EQ(t.length(0, a), 30);
  EXPECT_EQ(t.pages(a).size(), 8u);
  t.truncate(a, 10);
  EXPECT_EQ(t.length(0, a), 10);
  EXPECT_EQ(t.length(1, a), 10);
  EXPECT_EQ(t.length(2, a), 3);  // already shorter: kept
  EXPECT_EQ(t.max_length(a), 10);
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(t.free_pages(), 7);
  t.truncate(a, 8);  // exactly two pages
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 1}));
  // Freed pages are reused (last freed first: page 2, 3, ...).
  const SeqId b = t.add_sequence();
  t.reserve(b, 5);
  EXPECT_EQ(pages_of(t, b), (std::vector<int32_t>{2, 3}));
  t.truncate(a, 0);
  EXPECT_TRUE(t.pages(a).empty());
  for (int l = 0; l < 3; ++l) EXPECT_EQ(t.length(l, a), 0);
  EXPECT_EQ(t.free_pages(), 8);
  EXPECT_THAT(error_message([&] { t.truncate(a, -1); }),
              AllOf(HasSubstr("truncate"), HasSubstr("-1")));
  expect_pages_accounted(t);
}

TEST(PageTables, SetLengthNeedsReservedPages) {
  PageTables t(2, 4, 8);
  const SeqId a = t.add_sequence();
  EXPECT_THAT(error_message([&] { t.set_length(0, a, 1); }),
              AllOf(HasSubstr("layer 0"), HasSubstr("sequence 0"), HasSubstr("1 tokens"),
                    HasSubstr("[0, 0]"), HasSubstr("reserve")));
  t.set_length(0, a, 0);
  t.reserve(a, 9);  // 2 pages: 16 slots
  t.set_length(1, a, 16);
  EXPECT_EQ(t.length(1, a), 16);
  EXPECT_EQ(t.length(0, a), 0);
  EXPECT_THAT(error_message([&] { t.set_length(0, a, 17); }),
              AllOf(HasSubstr("17"), HasSubstr("[0, 16]")));
  EXPECT_THAT(error_message([&] { t.set_length(0, a, -1); }), HasSubstr("-1"));
  EXPECT_THAT(error_message([&] { t.set_length(2, a, 1); }),
              AllOf(HasSubstr("layer 2"), HasSubstr("out of range")));
  EXPECT_THAT(error_message([&] { t.length(-1, a); }), HasSubstr("layer -1"));
}

TEST(PageTables, SlotMapsPositionsThroughThePageTable) {
  PageTables t(1, 6, 5);
  const SeqId a = t.add_sequence(), b = t.add_sequence();
  t.reserve(a, 3);   // page 0
  t.reserve(b, 10);  // pages 1, 2
  t.reserve(a, 11);  // pages 0, 3, 4
  EXPECT_EQ(pages_of(t, a), (std::vector<int32_t>{0, 3, 4}));
  for (int pos = 0; pos < 15; ++pos)
    EXPECT_EQ(t.slot(a, pos), pages_of(t, a)[pos / 5] * 5 + pos % 5) << pos;
  EXPECT_EQ(t.slot(b, 0), 5);
  EXPECT_EQ(t.slot(b, 9), 14);
  EXPECT_THAT(error_message([&] { t.slot(a, 15); }),
              AllOf(HasSubstr("position 15"), HasSubstr("[0, 15)")));
  EXPECT_THAT(error_message([&] { t.slot(b, -1); }), HasSubstr("position -1"));
}

TEST(PageTables, BatchBuildsCsrTablesOfRaggedSequences) {
  const int P = 4;
  PageTables t(2, 40, P);
  // Lengths: 1 token, a whole page, not a multiple of the page size, several pages; in layer 1
  // different lengths (layers lag behind one another).
  const std::vector<int> len0 = {1, 4, 7, 13, 2}, len1 = {1, 3, 6, 0, 2};
  std::vector<SeqId> ids;
  for (size_t i = 0; i < len0.size(); ++i) ids.push_back(t.add_sequence());
  // Interleaved growth so that page ids alternate between the sequences.
  for (int step = 1; step <= 13; ++step)
    for (size_t i = 0; i < ids.size(); ++i)
      if (step <= len0[i]) {
        t.reserve(ids[i], step);
        t.set_length(0, ids[i], step);
        if (step <= len1[i]) t.set_length(1, ids[i], step);
      }
  auto check = [&](const std::vector<size_t>& order, int layer, int extra) {
    SCOPED_TRACE("layer " + std::to_string(layer) + " extra " + std::to_string(extra) + ", " +
                 std::to_string(order.size()) + " sequences");
    std::vector<SeqId> seqs;
    for (size_t i : order) seqs.push_back(ids[i]);
    const BatchTables bt = t.batch(seqs, layer, extra);
    ASSERT_EQ(bt.batch(), static_cast<int>(order.size()));
    ASSERT_EQ(bt.page_indptr.size(), order.size() + 1);
    EXPECT_EQ(bt.page_indptr[0], 0);
    int max_len = 0;
    for (size_t b = 0; b < order.size(); ++b) {
      const int len = t.length(layer, seqs[b]) + extra;
      EXPECT_EQ(bt.lengths[b], len) << "entry " << b;
      max_len = std::max(max_len, len);
      const int used = static_cast<int>(t.pages_for(len));
      ASSERT_EQ(bt.page_indptr[b + 1] - bt.page_indptr[b], used) << "entry " << b;
      const auto pages = t.pages(seqs[b]);
      for (int p = 0; p < used; ++p)
        EXPECT_EQ(bt.page_indices[bt.page_indptr[b] + p], pages[p])
            << "entry " << b << " page " << p;
    }
    EXPECT_EQ(static_cast<size_t>(bt.page_indptr.back()), bt.page_indices.size());
    EXPECT_EQ(bt.max_length, max_len);
    const BatchView v = bt.view();
    EXPECT_NO_THROW(v.validate());
    EXPECT_EQ(v.batch, bt.batch());
    EXPECT_EQ(v.max_length, max_len);
    EXPECT_EQ(v.page_indptr, bt.page_indptr.data());
    EXPECT_EQ(v.page_indices, bt.page_indices.data());
    EXPECT_EQ(v.lengths, bt.lengths.data());
    // The reusing overload gives the same tables.
    BatchTables reused;
    reused.page_indices.assign(100, -7);  // stale content is replaced
    reused.lengths.assign(9, -7);
    t.batch(seqs, layer, extra, reused);
    EXPECT_EQ(reused.page_indptr, bt.page_indptr);
    EXPECT_EQ(reused.page_indices, bt.page_indices);
    EXPECT_EQ(reused.lengths, bt.lengths);
    EXPECT_EQ(reused.max_length, bt.max_length);
  };
  check({0, 1, 2, 3, 4}, 0, 0);
  check({3, 0, 4}, 0, 0);
  check({0}, 0, 0);
  check({2, 2}, 0, 0);  // a sequence may appear twice
  check({0, 1, 2, 4}, 1, 0);
  // extra = 1: a decode step's lengths once its token is appended; its pages must be reserved.
  EXPECT_THAT(error_message([&] { t.batch(std::vector<SeqId>{ids[1]}, 0, 1); }),
              AllOf(HasSubstr("sequence 1"), HasSubstr("needs 2 pages"), HasSubstr("holds 1"),
                    HasSubstr("reserve")));
  for (size_t i = 0; i < ids.size(); ++i) t.reserve(ids[i], int64_t{len0[i]} + 1);
  check({0, 1, 2, 3, 4}, 0, 1);
  check({4, 1}, 1, 1);
  check({3}, 1, 1);  // 0 tokens in layer 1, 1 with the step's token
  // A sequence without tokens in the layer, an empty batch, negative extra, bad layers.
  EXPECT_THAT(error_message([&] {
                t.batch(std::vector<SeqId>{ids[0], ids[3]}, 1);
              }),
              AllOf(HasSubstr("sequence 3"), HasSubstr("no tokens"), HasSubstr("layer 1")));
  EXPECT_THAT(error_message([&] { t.batch(std::vector<SeqId>{}, 0); }),
              HasSubstr("at least one sequence"));
  EXPECT_THAT(error_message([&] { t.batch(std::vector<SeqId>{ids[0]}, 0, -1); }),
              AllOf(HasSubstr("extra"), HasSubstr("-1")));
  EXPECT_THAT(error_message([&] { t.batch(std::vector<SeqId>{ids[0]}, 2); }),
              AllOf(HasSubstr("layer 2"), HasSubstr("out of range")));
}

TEST(PageTables, BatchViewValidateNamesTheField) {
  const int32_t indptr[2] = {0, 1}, indices[1] = {0}, lengths[1] = {3};
  const BatchView good{indptr, indices, lengths, 1, 3};
  EXPECT_NO_THROW(good.validate());
  BatchView v = good;
  v.batch = 0;
  EXPECT_THAT(error_message([&] { v.validate(); }), AllOf(HasSubstr("batch"), HasSubstr("got 0")));
  v = good;
  v.page_indptr = nullptr;
  EXPECT_THAT(error_message([&] { v.validate(); }), HasSubstr("page_indptr"));
  v = good;
  v.page_indices = nullptr;
  EXPECT_THAT(error_message([&] { v.validate(); }), HasSubstr("page_indices"));
  v = good;
  v.lengths = nullptr;
  EXPECT_THAT(error_message([&] { v.validate(); }), HasSubstr("lengths"));
  v = good;
  v.max_length = 0;
  EXPECT_THAT(error_message([&] { v.validate(); }),
              AllOf(HasSubstr("max_length"), HasSubstr("got 0")));
}

TEST(PageTables, RemovedAndUnknownIdsThrowNamingTheId) {
  PageTables t(2, 8, 4);
  const SeqId a = t.add_sequence(), b = t.add_sequence();
  t.reserve(a, 9);
  t.set_length(0, a, 9);
  t.reserve(b, 4);
  t.set_length(0, b, 4);
  const auto pa = pages_of(t, a);
  t.remove_sequence(a);
  EXPECT_FALSE(t.alive(a));
  EXPECT_TRUE(t.alive(b));
  EXPECT_FALSE(t.alive(7));
  EXPECT_FALSE(t.alive(-1));
  EXPECT_EQ(t.live_sequences(), std::vector<SeqId>{b});
  EXPECT_EQ(t.free_pages(), 7);
  const auto removed = AllOf(HasSubstr("removed sequence"), HasSubstr("id 0"));
  EXPECT_THAT(error_message([&] { t.length(0, a); }), removed);
  EXPECT_THAT(error_message([&] { t.max_length(a); }), removed);
  EXPECT_THAT(error_message([&] { t.pages(a); }), removed);
  EXPECT_THAT(error_message([&] { t.reserve(a, 1); }), removed);
  EXPECT_THAT(error_message([&] { t.rollback(a, 0); }), removed);
  EXPECT_THAT(error_message([&] { t.set_length(0, a, 0); }), removed);
  EXPECT_THAT(error_message([&] { t.truncate(a, 0); }), removed);
  EXPECT_THAT(error_message([&] { t.slot(a, 0); }), removed);
  EXPECT_THAT(error_message([&] { t.remove_sequence(a); }), removed);
  EXPECT_THAT(error_message([&] { t.batch(std::vector<SeqId>{b, a}, 0); }), removed);
  const auto unknown = AllOf(HasSubstr("unknown sequence id 7"), HasSubstr("0 .. 1"));
  EXPECT_THAT(error_message([&] { t.length(0, 7); }), unknown);
  EXPECT_THAT(error_message([&] { t.reserve(7, 1); }), unknown);
  EXPECT_THAT(error_message([&] { t.pages(-1); }), HasSubstr("unknown sequence id -1"));
  // Ids are not reused; the removed sequence's pages are, first page first.
  const SeqId c = t.add_sequence();
  EXPECT_EQ(c, 2);
  t.reserve(c, 12);
  EXPECT_EQ(pages_of(t, c), pa);
  expect_pages_accounted(t);
}

TEST(PageTables, ConstructorChecksItsArguments) {
  EXPECT_THAT(error_message([] { PageTables(0, 4, 4); }),
              AllOf(HasSubstr("num_layers"), HasSubstr("got 0")));
  EXPECT_THAT(error_message([] { PageTables(1, 0, 4); }),
              AllOf(HasSubstr("num_pages"), HasSubstr("got 0")));
  EXPECT_THAT(error_message([] { PageTables(1, 4, -2); }),
              AllOf(HasSubstr("page_size"), HasSubstr("-2")));
}

// PagedKVCache keeps its bookkeeping in a PageTables: the accessor shows the same state.
TEST(PageTables, PagedKVCacheExposesItsTables) {
  CacheConfig cfg;
  cfg.num_layers = 2;
  cfg.num_kv_heads = 1;
  cfg.head_dim = 16;
  cfg.page_size = 4;
  cfg.num_pages = 8;
  cfg.dtype = DType::kF32;
  PagedKVCache c(cfg);
  const SeqId a = c.add_sequence();
  std::vector<float> kv(10 * 16, 0.25f);
  c.append(0, a, kv.data(), kv.data(), 10);
  c.append(1, a, kv.data(), kv.data(), 3);
  const PageTables& t = c.page_tables();
  EXPECT_EQ(t.length(0, a), 10);
  EXPECT_EQ(t.length(1, a), 3);
  EXPECT_EQ(t.free_pages(), c.free_pages());
  EXPECT_EQ(pages_of(t, a), std::vector<int32_t>(c.page_table(a).begin(), c.page_table(a).end()));
  const BatchTables bt = t.batch(std::vector<SeqId>{a}, 1);
  EXPECT_EQ(bt.lengths, std::vector<int32_t>{3});
  EXPECT_EQ(bt.page_indices, std::vector<int32_t>{0});
  c.truncate(a, 5);
  EXPECT_EQ(t.length(0, a), 5);
  EXPECT_EQ(t.pages(a).size(), 2u);
}

}  // namespace
}  // namespace adamas::test
