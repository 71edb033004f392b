// Chunk codec and chunked shard storage, as tables: encode/decode round trips per kind and value
// shape, damaged blobs (a corruption Status, never a crash), late points into compacted chunks,
// and the chunk layout answering exactly what the plain-row layout answers over the same writes.
#include <xxhash.h>
#include <QTemporaryDir>
#include <QtTest>

#include <bit>
#include <cmath>
#include <filesystem>
#include <random>

#include "aggregate/router.h"
#include "aggregate/shard.h"
#include "eventually.h"  // tests/support
#include "query/query_engine.h"
#include "self_metrics.h"
#include "storage/chunk_codec.h"
#include "storage/chunk_format.h"
#include "storage/shard_store.h"
#include "storage/sqlite.h"

using namespace tally;
using namespace tally::collector;
namespace cf = tally::collector::chunk_format;

Q_DECLARE_METATYPE(tally::Kind)

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

BucketAgg counter(double v) {
  BucketAgg a;
  a.add_counter(v);
  return a;
}
BucketAgg gauge(double last, double min, double max, double sum, uint64_t count) {
  BucketAgg a;
  a.add_gauge(last, min, max, sum, count);
  return a;
}
BucketAgg dist(std::initializer_list<double> values) {
  Sketch s;
  for (double v : values) s.add(v);
  BucketAgg a;
  a.add_sketch(s);
  return a;
}

bool same_double(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

// Field by field, bitwise for doubles; what a kind does not store is not compared.
QString diff(Kind kind, const BucketAgg& a, const BucketAgg& b) {
  auto num = [](double v) { return QString::number(v, 'g', 17); };
  if (!same_double(a.sum, b.sum)) return "sum " + num(a.sum) + " != " + num(b.sum);
  if (kind == Kind::kCounter) return {};
  if (a.count != b.count) return QString("count %1 != %2").arg(a.count).arg(b.count);
  if (!same_double(a.min, b.min)) return "min " + num(a.min) + " != " + num(b.min);
  if (!same_double(a.max, b.max)) return "max " + num(a.max) + " != " + num(b.max);
  if (kind == Kind::kGauge && !same_double(a.last, b.last))
    return "last " + num(a.last) + " != " + num(b.last);
  if (kind == Kind::kDistribution) {
    if (bool(a.sketch) != bool(b.sketch)) return "sketch presence differs";
    if (a.sketch && !(*a.sketch == *b.sketch)) return "sketch differs";
  }
  return {};
}

// Value shapes for the round-trip table.
enum class Shape {
  kSmallCounts,
  kFractional,
  kAllZeros,
  kLarge,
  kExtremes,
  kBeyondExact,
  kNegative,
  kCumulative,
  kSparse,
  kEmpty,
  kOneSlot,
  kNaNAndInf,
  kMinusZero,
  kGauges,
  kGaugeIntegral,
  kSketches,
  kSketchesSparse
};

std::vector<ChunkSlot> make_slots(Shape shape, uint32_t nslots) {
  std::mt19937_64 rng(42);
  std::poisson_distribution<int> poisson(3.0);
  std::vector<ChunkSlot> out;
  auto add = [&](uint32_t i, BucketAgg a) { out.push_back({i, std::move(a)}); };
  for (uint32_t i = 0; i < nslots; ++i) {
    switch (shape) {
      case Shape::kSmallCounts:
        add(i, counter(poisson(rng)));
        break;
      case Shape::kFractional:
        add(i, counter(poisson(rng) / 3.0));
        break;
      case Shape::kAllZeros:
        add(i, counter(0));
        break;
      case Shape::kLarge:
        add(i, counter(static_cast<double>((uint64_t{1} << 53) - rng() % 1000)));
        break;
      case Shape::kExtremes:
        add(i, counter(i % 2 ? cf::kMaxIntegral : -cf::kMaxIntegral + i));
        break;
      case Shape::kBeyondExact:
        add(i, counter(1e300 * (i % 7) + 1e17));
        break;
      case Shape::kNegative:
        add(i, counter(-static_cast<double>(poisson(rng)) * (i % 2 ? 1 : 1000)));
        break;
      case Shape::kCumulative:
        add(i, counter(1e6 + i * 17.0 + poisson(rng)));
        break;
      case Shape::kSparse:
        if (rng() % 5 == 0) add(i, counter(poisson(rng)));
        break;
      case Shape::kEmpty:
        break;
      case Shape::kOneSlot:
        if (i == nslots / 2) add(i, counter(12345));
        break;
      case Shape::kNaNAndInf:
        add(i, counter(i % 3 == 0 ? kInf : i % 3 == 1 ? -kInf : std::nan("")));
        break;
      case Shape::kMinusZero:
        add(i, counter(i % 2 ? -0.0 : 0.0));
        break;
      case Shape::kGauges: {
        double v = std::sin(i / 10.0) * 100;
        add(i, gauge(v, v - 1.5, v + 2.25, v * 3, 3));
        break;
      }
      case Shape::kGaugeIntegral:
        add(i, gauge(i % 10, 0, 20, 100 + i, 1 + i % 4));
        break;
      case Shape::kSketches:
        add(i, dist({0.0, 1.0 + i, 250.0 * (i % 5 + 1), -3.5, 1e6 + i}));
        break;
      case Shape::kSketchesSparse:
        if (i % 13 == 0)
          add(i, dist({static_cast<double>(i), 42.0}));
        else if (i % 13 == 1)
          add(i, BucketAgg{});  // a distribution bucket without samples
        break;
    }
  }
  return out;
}

// A counter chunk, valid, for the corruption table.
std::string sample_chunk() {
  return encode_chunk(Kind::kCounter, cf::kSegmentSlots,
                      make_slots(Shape::kSmallCounts, cf::kSegmentSlots));
}

// Recomputes the trailing checksum, so the structural checks, not the checksum, must catch damage.
void fix_checksum(std::string* blob) {
  if (blob->size() < 4) return;
  const uint32_t c = XXH32(blob->data(), blob->size() - 4, cf::kChecksumSeed);
  for (int i = 0; i < 4; ++i) (*blob)[blob->size() - 4 + i] = static_cast<char>(c >> (8 * i));
}

}  // namespace

class TestChunks : public QObject {
  Q_OBJECT

 private slots:
  void roundTrip_data();
  void roundTrip();
  void counterSumsMatchDecode_data();
  void counterSumsMatchDecode();
  void damagedChunkIsCorruption_data();
  void damagedChunkIsCorruption();
  void randomDamageNeverCrashes();
  void hourOfPoissonCountsIsSmall();

  void lateBucketMergesIntoCompactedChunk_data();
  void lateBucketMergesIntoCompactedChunk();
  void chunkLayoutAnswersLikePlainRows_data();
  void chunkLayoutAnswersLikePlainRows();
  void storedLsnSurvivesCompaction();
  void longCompactionLetsTheShardWorkBetween();
  void openHourIsMergedIntoItsChunkInParts();
  void sqliteWalIsCheckpointedAndCutBack();
  void plainRowFileIsConverted();
  void retentionDropsWholeWindows();
  void queriesOverChunksEqualPlainRows_data();
  void queriesOverChunksEqualPlainRows();
};

void TestChunks::roundTrip_data() {
  QTest::addColumn<Kind>("kind");
  QTest::addColumn<int>("shape");
  QTest::addColumn<uint32_t>("nslots");
  auto row = [](const std::string& name, Kind k, Shape s, uint32_t n) {
    QTest::addRow("%s", name.c_str()) << k << int(s) << n;  // addRow keeps its own copy
  };
  for (uint32_t n : {cf::kSegmentSlots, cf::kChunkSlots}) {
    const std::string suffix = n == cf::kChunkSlots ? " (chunk)" : " (segment)";
    auto name = [&](const char* base) { return base + suffix; };
    row(name("counter small integral counts"), Kind::kCounter, Shape::kSmallCounts, n);
    row(name("counter fractional"), Kind::kCounter, Shape::kFractional, n);
    row(name("counter all zeros"), Kind::kCounter, Shape::kAllZeros, n);
    row(name("counter large, up to 2^53"), Kind::kCounter, Shape::kLarge, n);
    row(name("counter from -2^53 to 2^53"), Kind::kCounter, Shape::kExtremes, n);
    row(name("counter beyond 2^53"), Kind::kCounter, Shape::kBeyondExact, n);
    row(name("counter negative"), Kind::kCounter, Shape::kNegative, n);
    row(name("counter cumulative (delta wins)"), Kind::kCounter, Shape::kCumulative, n);
    row(name("counter sparse: empty buckets"), Kind::kCounter, Shape::kSparse, n);
    row(name("no buckets at all"), Kind::kCounter, Shape::kEmpty, n);
    row(name("one bucket"), Kind::kCounter, Shape::kOneSlot, n);
    row(name("counter nan and infinities"), Kind::kCounter, Shape::kNaNAndInf, n);
    row(name("counter minus zero"), Kind::kCounter, Shape::kMinusZero, n);
    row(name("gauge fractional"), Kind::kGauge, Shape::kGauges, n);
    row(name("gauge integral"), Kind::kGauge, Shape::kGaugeIntegral, n);
    row(name("distribution sketches"), Kind::kDistribution, Shape::kSketches, n);
    row(name("distribution sparse and empty"), Kind::kDistribution, Shape::kSketchesSparse, n);
  }
}

void TestChunks::roundTrip() {
  QFETCH(Kind, kind);
  QFETCH(int, shape);
  QFETCH(uint32_t, nslots);
  const auto buckets = make_slots(static_cast<Shape>(shape), nslots);
  const std::string blob = encode_chunk(kind, nslots, buckets);
  std::vector<ChunkSlot> back;
  Status s = decode_chunk(blob, kind, nslots, &back);
  QVERIFY2(s.is_ok(), s.to_string().c_str());
  QCOMPARE(back.size(), buckets.size());
  for (size_t i = 0; i < buckets.size(); ++i) {
    QCOMPARE(back[i].index, buckets[i].index);
    const QString d = diff(kind, buckets[i].agg, back[i].agg);
    QVERIFY2(d.isEmpty(), qPrintable(QString("slot %1: ").arg(buckets[i].index) + d));
  }
  // The blob says what it is: another kind or slot count is refused.
  QCOMPARE(decode_chunk(blob, kind == Kind::kGauge ? Kind::kCounter : Kind::kGauge, nslots, &back)
               .code(),
           StatusCode::kCorruption);
  QCOMPARE(decode_chunk(blob, kind, nslots + 1, &back).code(), StatusCode::kCorruption);
}

void TestChunks::counterSumsMatchDecode_data() {
  QTest::addColumn<int>("shape");
  QTest::newRow("small counts") << int(Shape::kSmallCounts);
  QTest::newRow("sparse") << int(Shape::kSparse);
  QTest::newRow("empty") << int(Shape::kEmpty);
  QTest::newRow("fractional") << int(Shape::kFractional);
  QTest::newRow("cumulative") << int(Shape::kCumulative);
}

void TestChunks::counterSumsMatchDecode() {
  QFETCH(int, shape);
  const auto buckets = make_slots(static_cast<Shape>(shape), cf::kChunkSlots);
  const std::string blob = encode_chunk(Kind::kCounter, cf::kChunkSlots, buckets);
  std::vector<double> dense(cf::kChunkSlots, -1.0);
  QVERIFY(decode_counter_sums(blob, cf::kChunkSlots, dense.data()).is_ok());
  std::vector<double> want(cf::kChunkSlots, 0.0);
  for (const auto& s : buckets) want[s.index] = s.agg.sum;
  for (uint32_t i = 0; i < cf::kChunkSlots; ++i)
    QVERIFY2(same_double(dense[i], want[i]), qPrintable(QString::number(i)));
}

void TestChunks::damagedChunkIsCorruption_data() {
  QTest::addColumn<QByteArray>("blob");
  QTest::addColumn<bool>("fixChecksum");
  const std::string good = sample_chunk();
  auto bytes = [](const std::string& s) {
    return QByteArray(s.data(), static_cast<int>(s.size()));
  };
  QTest::newRow("empty") << QByteArray() << false;
  QTest::newRow("one byte") << QByteArray("\x01", 1) << false;
  QTest::newRow("truncated by one") << bytes(good.substr(0, good.size() - 1)) << false;
  QTest::newRow("truncated to half") << bytes(good.substr(0, good.size() / 2)) << false;
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  QTest::newRow("a flipped bit") << bytes(flipped) << false;
  std::string version = good;
  version[0] = 9;
  QTest::newRow("unknown version") << bytes(version) << true;
  std::string runs = good;
  runs[3] = 5;  // presence run count no longer adds up to the slot count
  QTest::newRow("presence runs do not add up") << bytes(runs) << true;
  std::string shorter = good.substr(0, good.size() - 5) + good.substr(good.size() - 4);
  QTest::newRow("a byte too few") << bytes(shorter) << true;
  std::string longer =
      good.substr(0, good.size() - 4) + std::string("\x00", 1) + good.substr(good.size() - 4);
  QTest::newRow("a byte too many") << bytes(longer) << true;
  QTest::newRow("garbage") << QByteArray(200, '\xff') << false;
  QTest::newRow("garbage, checksum right") << QByteArray(200, '\xff') << true;
}

void TestChunks::damagedChunkIsCorruption() {
  QFETCH(QByteArray, blob);
  QFETCH(bool, fixChecksum);
  std::string b(blob.constData(), static_cast<size_t>(blob.size()));
  if (fixChecksum) fix_checksum(&b);
  std::vector<ChunkSlot> out;
  QCOMPARE(decode_chunk(b, Kind::kCounter, cf::kSegmentSlots, &out).code(),
           StatusCode::kCorruption);
  std::vector<double> dense(cf::kSegmentSlots);
  QCOMPARE(decode_counter_sums(b, cf::kSegmentSlots, dense.data()).code(), StatusCode::kCorruption);
}

// Every single-byte change of chunks of each kind, with the checksum made to match: the decoder
// must return a Status (ok or corruption) and never crash or hang.
void TestChunks::randomDamageNeverCrashes() {
  std::vector<std::pair<Kind, std::string>> blobs = {
      {Kind::kCounter, sample_chunk()},
      {Kind::kCounter, encode_chunk(Kind::kCounter, cf::kSegmentSlots,
                                    make_slots(Shape::kFractional, cf::kSegmentSlots))},
      {Kind::kGauge, encode_chunk(Kind::kGauge, cf::kSegmentSlots,
                                  make_slots(Shape::kGauges, cf::kSegmentSlots))},
      {Kind::kDistribution, encode_chunk(Kind::kDistribution, cf::kSegmentSlots,
                                         make_slots(Shape::kSketches, cf::kSegmentSlots))},
  };
  std::mt19937 rng(7);
  size_t corrupt = 0, total = 0;
  for (const auto& [kind, good] : blobs) {
    for (size_t pos = 0; pos + 4 < good.size(); ++pos) {
      for (int trial = 0; trial < 3; ++trial) {
        std::string b = good;
        b[pos] = static_cast<char>(rng());
        if (b == good) continue;
        fix_checksum(&b);
        std::vector<ChunkSlot> out;
        Status s = decode_chunk(b, kind, cf::kSegmentSlots, &out);
        QVERIFY(s.is_ok() || s.code() == StatusCode::kCorruption);
        corrupt += s.is_ok() ? 0 : 1;
        ++total;
      }
    }
  }
  qInfo(
      "%zu of %zu damaged blobs were refused; the rest decode to other values (the checksum "
      "catches those)",
      corrupt, total);
  // Without the checksum fixed, every change is refused.
  std::string b = sample_chunk();
  for (size_t pos = 0; pos < b.size(); ++pos) {
    std::string d = b;
    d[pos] ^= 0x01;
    std::vector<ChunkSlot> out;
    QCOMPARE(decode_chunk(d, Kind::kCounter, cf::kSegmentSlots, &out).code(),
             StatusCode::kCorruption);
  }
}

// An hour of 1 s Poisson counts like the standard dataset's median series (mean 3) codes near
// its entropy (about 2.9 bits a value); the bound leaves room for the table and header.
void TestChunks::hourOfPoissonCountsIsSmall() {
  const auto buckets = make_slots(Shape::kSmallCounts, cf::kChunkSlots);
  const std::string blob = encode_chunk(Kind::kCounter, cf::kChunkSlots, buckets);
  const double bytes_per_point = static_cast<double>(blob.size()) / cf::kChunkSlots;
  qInfo("%zu bytes, %.3f bytes a point", blob.size(), bytes_per_point);
  QVERIFY(bytes_per_point < 0.40);
  const std::string zeros =
      encode_chunk(Kind::kCounter, cf::kChunkSlots, make_slots(Shape::kAllZeros, cf::kChunkSlots));
  QVERIFY2(zeros.size() < 24, qPrintable(QString::number(zeros.size())));
}

// --- the store ---

namespace {

const std::vector<Resolution> kRes = {{1, 6 * 3600}, {10, 7 * 86400}};

struct Stores {
  QTemporaryDir dir;
  std::unique_ptr<ShardStore> chunks, rows;
  Stores() {
    auto c = ShardStore::open((dir.path() + "/chunks.sqlite").toStdString(), kRes);
    auto r = ShardStore::open((dir.path() + "/rows.sqlite").toStdString(), kRes,
                              {StorageLayout::kPlainRows});
    if (c) chunks = std::move(*c);
    if (r) rows = std::move(*r);
  }
  // The same write into both layouts, in the open transaction or in one of its own.
  Status merge(uint64_t id, Kind kind, size_t res, int64_t t, const BucketAgg& a, uint64_t lsn) {
    for (auto* s : {chunks.get(), rows.get()}) {
      if (!open_) {
        if (auto st = s->begin(); !st) return st;
      }
      if (auto st = s->merge_bucket(id, kind, res, t, a, lsn, nullptr); !st) return st;
      if (!open_) {
        if (auto st = s->commit(); !st) return st;
      }
    }
    return Status::ok();
  }
  Status begin() {
    open_ = true;
    for (auto* s : {chunks.get(), rows.get()})
      if (auto st = s->begin(); !st) return st;
    return Status::ok();
  }
  Status commit() {
    open_ = false;
    for (auto* s : {chunks.get(), rows.get()})
      if (auto st = s->commit(); !st) return st;
    return Status::ok();
  }
  bool open_ = false;
};

std::vector<StoredBucket> read_all(ShardStore& s, uint64_t id, Kind kind, size_t res, int64_t from,
                                   int64_t to) {
  std::vector<StoredBucket> out;
  auto r = s.acquire_reader();
  if (!r) return out;
  if ((*r)->begin_snapshot().is_ok()) {
    if (!(*r)->read(id, kind, res, from, to, &out).is_ok()) out.clear();
    (*r)->end_snapshot();
  }
  s.release_reader(std::move(*r));
  return out;
}

QString compare(Kind kind, const std::vector<StoredBucket>& a, const std::vector<StoredBucket>& b) {
  if (a.size() != b.size()) return QString("%1 buckets != %2").arg(a.size()).arg(b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].time != b[i].time)
      return QString("bucket %1: time %2 != %3").arg(i).arg(a[i].time).arg(b[i].time);
    // The plain-row layout stores counters' min/max as 0 and gauges' NaN-free values: compare what
    // the kind means.
    if (a[i].agg.sum != b[i].agg.sum)
      return QString("t=%1: sum %2 != %3").arg(a[i].time).arg(a[i].agg.sum).arg(b[i].agg.sum);
    if (kind == Kind::kCounter) continue;
    if (a[i].agg.count != b[i].agg.count || a[i].agg.min != b[i].agg.min ||
        a[i].agg.max != b[i].agg.max)
      return QString("t=%1: count/min/max differ").arg(a[i].time);
    if (kind == Kind::kGauge && a[i].agg.last != b[i].agg.last)
      return QString("t=%1: last differs").arg(a[i].time);
    if (kind == Kind::kDistribution &&
        (bool(a[i].agg.sketch) != bool(b[i].agg.sketch) ||
         (a[i].agg.sketch && !(*a[i].agg.sketch == *b[i].agg.sketch))))
      return QString("t=%1: sketch differs").arg(a[i].time);
  }
  return {};
}

constexpr int64_t kT0 = 1795806000;  // the standard dataset's start, on an hour boundary

}  // namespace

void TestChunks::lateBucketMergesIntoCompactedChunk_data() {
  QTest::addColumn<Kind>("kind");
  QTest::newRow("counter") << Kind::kCounter;
  QTest::newRow("gauge") << Kind::kGauge;
  QTest::newRow("distribution") << Kind::kDistribution;
}

void TestChunks::lateBucketMergesIntoCompactedChunk() {
  QFETCH(Kind, kind);
  Stores st;
  QVERIFY(st.chunks && st.rows);
  auto agg = [&](int i) {
    switch (kind) {
      case Kind::kCounter:
        return counter(i % 7);
      case Kind::kGauge:
        return gauge(i, i - 1, i + 1, 3 * i, 3);
      default:
        return dist({double(i), i * 2.0});
    }
  };
  for (int i = 0; i < 7200; i += 3) QVERIFY(st.merge(7, kind, 0, kT0 + i, agg(i), 10 + i).is_ok());
  CompactStats cs;
  QVERIFY(st.chunks->compact(kT0 + 7200 + 60, &cs).is_ok());
  QCOMPARE(cs.chunks, uint64_t(2));  // two hours of 1 s buckets
  // A late bucket into the first chunk: one already stored, one empty slot.
  BucketAgg merged;
  QVERIFY(st.chunks->begin().is_ok());
  QVERIFY(st.chunks->merge_bucket(7, kind, 0, kT0 + 30, agg(1), 99999, &merged).is_ok());
  QVERIFY(st.chunks->commit().is_ok());
  QVERIFY(st.rows->begin().is_ok());
  BucketAgg merged_rows;
  QVERIFY(st.rows->merge_bucket(7, kind, 0, kT0 + 30, agg(1), 99999, &merged_rows).is_ok());
  QVERIFY(st.rows->commit().is_ok());
  QVERIFY2(diff(kind, merged_rows, merged).isEmpty() || kind == Kind::kCounter,
           qPrintable(diff(kind, merged_rows, merged)));
  QCOMPARE(merged.sum, merged_rows.sum);
  QVERIFY(st.merge(7, kind, 0, kT0 + 31, agg(2), 100000).is_ok());
  QCOMPARE(*st.chunks->stored_lsn(7, 0, kT0 + 31), uint64_t(100000));
  const QString d = compare(kind, read_all(*st.rows, 7, kind, 0, kT0, kT0 + 7200),
                            read_all(*st.chunks, 7, kind, 0, kT0, kT0 + 7200));
  QVERIFY2(d.isEmpty(), qPrintable(d));
}

void TestChunks::chunkLayoutAnswersLikePlainRows_data() {
  QTest::addColumn<int>("seed");
  QTest::addColumn<int>("series");
  for (int seed : {1, 2})
    QTest::newRow(qPrintable(QString("seed %1, few series").arg(seed))) << seed << 3;
  QTest::newRow("many series (scans, not lookups)") << 4 << 12;
}

// Random writes (in order, then late ones), compaction at random watermarks in between, reads of
// random ranges of one series and of all of them, and counter sums on step grids: the chunk layout
// must answer exactly what the plain-row layout answers.
void TestChunks::chunkLayoutAnswersLikePlainRows() {
  QFETCH(int, seed);
  QFETCH(int, series);
  Stores st;
  QVERIFY(st.chunks && st.rows);
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::vector<SeriesRef> refs;
  for (int i = 0; i < series; ++i)
    refs.push_back({static_cast<uint64_t>(100 + i), i % 5 == 3   ? Kind::kGauge
                                                    : i % 5 == 4 ? Kind::kDistribution
                                                                 : Kind::kCounter});
  auto agg_for = [&](Kind kind) {
    switch (kind) {
      case Kind::kCounter:
        return counter(static_cast<double>(rng() % 4 == 0 ? rng() % 50 : 0) +
                       (rng() % 9 == 0 ? 0.25 : 0));
      case Kind::kGauge: {
        double v = static_cast<double>(rng() % 1000) / 8;
        return gauge(v, v - 1, v + 1, 2 * v, 2);
      }
      default:
        return dist({static_cast<double>(rng() % 500), 1.5});
    }
  };
  const int64_t span = 2 * 3600 + 300;  // two chunks, then segments and hot rows
  uint64_t lsn = 1;
  int64_t watermark = kT0;
  for (int64_t t = kT0; t < kT0 + span; ++t) {
    QVERIFY(st.begin().is_ok());
    for (const auto& s : refs) {
      if (rng() % 3 == 0) continue;  // gaps: absent buckets
      BucketAgg a = agg_for(s.kind);
      QVERIFY(st.merge(s.id, s.kind, 0, t, a, lsn).is_ok());
      QVERIFY(st.merge(s.id, s.kind, 1, bucket_start(t, 10), a, lsn).is_ok());
      ++lsn;
    }
    QVERIFY(st.commit().is_ok());
    if (rng() % 400 == 0) {
      watermark = t - 2;
      QVERIFY(st.chunks->compact(watermark).is_ok());
    }
    // Late buckets, into whatever tier holds their time now.
    if (rng() % 50 == 0 && t > kT0 + 100) {
      const auto& s = refs[rng() % refs.size()];
      const int64_t late = t - 1 - static_cast<int64_t>(rng() % static_cast<uint64_t>(t - kT0));
      BucketAgg a = agg_for(s.kind);
      QVERIFY(st.merge(s.id, s.kind, 0, late, a, lsn).is_ok());
      QVERIFY(st.merge(s.id, s.kind, 1, bucket_start(late, 10), a, lsn).is_ok());
      ++lsn;
    }
  }
  QVERIFY(st.chunks->compact(kT0 + span - 2).is_ok());
  for (int q = 0; q < 25; ++q) {
    const size_t res = rng() % 2;
    const int64_t from = kT0 - 100 + static_cast<int64_t>(rng() % (span + 200));
    const int64_t to = from + 1 + static_cast<int64_t>(rng() % 5000);
    // Each series alone (point lookups) ...
    for (const auto& s : refs) {
      const QString d = compare(s.kind, read_all(*st.rows, s.id, s.kind, res, from, to),
                                read_all(*st.chunks, s.id, s.kind, res, from, to));
      QVERIFY2(
          d.isEmpty(),
          qPrintable(QString("series %1 res %2 [%3, %4): ").arg(s.id).arg(res).arg(from).arg(to) +
                     d));
    }
    // ... and all at once (scans).
    std::vector<std::vector<StoredBucket>> all_rows, all_chunks;
    for (auto* store : {st.rows.get(), st.chunks.get()}) {
      auto r = store->acquire_reader();
      QVERIFY(r.has_value());
      QVERIFY((*r)->begin_snapshot().is_ok());
      QVERIFY((*r)->read(refs, res, from, to, refs.size(),
                         store == st.rows.get() ? &all_rows : &all_chunks)
                  .is_ok());
      (*r)->end_snapshot();
      store->release_reader(std::move(*r));
    }
    for (size_t i = 0; i < refs.size(); ++i) {
      const QString d = compare(refs[i].kind, all_rows[i], all_chunks[i]);
      QVERIFY2(d.isEmpty(), qPrintable(QString("all, series %1: ").arg(refs[i].id) + d));
    }
    // Counter sums on a step grid, rows grouped two by two.
    const int64_t step = res == 0 ? (rng() % 2 ? 1 : 60) : 60;
    StepGrid grid{bucket_start(from, step), bucket_start(to - 1, step) + step, step};
    std::vector<SeriesRef> counters;
    std::vector<uint32_t> rows;
    for (const auto& s : refs)
      if (s.kind == Kind::kCounter) {
        rows.push_back(static_cast<uint32_t>(counters.size() / 2));
        counters.push_back(s);
      }
    const size_t nrows = (counters.size() + 1) / 2;
    std::vector<double> want(nrows * grid.steps(), 0.0), got(nrows * grid.steps(), 0.0);
    for (auto* store : {st.rows.get(), st.chunks.get()}) {
      auto r = store->acquire_reader();
      QVERIFY((*r)->begin_snapshot().is_ok());
      QVERIFY((*r)->add_counter_sums(counters, rows, res, grid, refs.size(),
                                     store == st.rows.get() ? want.data() : got.data())
                  .is_ok());
      (*r)->end_snapshot();
      store->release_reader(std::move(*r));
    }
    for (size_t k = 0; k < want.size(); ++k)
      QVERIFY2(std::abs(want[k] - got[k]) <= 1e-9 * std::max(1.0, std::abs(want[k])),
               qPrintable(QString("sum cell %1: %2 != %3").arg(k).arg(want[k]).arg(got[k])));
  }
}

// Replay asks for a bucket's LSN: hot rows keep their row's, a compacted window the largest LSN
// that went into it, for each bucket it holds; a bucket that is not stored answers 0 (replaying
// into it cannot count anything twice).
void TestChunks::storedLsnSurvivesCompaction() {
  Stores st;
  for (int i = 0; i < 120; ++i)
    QVERIFY(st.merge(5, Kind::kCounter, 0, kT0 + i, counter(1), 1000 + i).is_ok());
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 10), uint64_t(1010));
  QCOMPARE(*st.chunks->stored_lsn(6, 0, kT0 + 10), uint64_t(0));
  QVERIFY(st.chunks->compact(kT0 + 60).is_ok());  // the first minute becomes a segment
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 10), uint64_t(1059));
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 70), uint64_t(1070));  // still a hot row
  QVERIFY(st.chunks->compact(kT0 + 3600 + 5).is_ok());  // the whole hour becomes a chunk
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 10), uint64_t(1119));
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 119), uint64_t(1119));
  QCOMPARE(*st.chunks->stored_lsn(5, 0, kT0 + 3000),
           uint64_t(0));  // in the chunk's window, not stored
  QCOMPARE(*st.chunks->stored_lsn(6, 0, kT0 + 10), uint64_t(0));
}

// The open hour's 1 s segments go into its chunk every kPartialChunkSegments minutes, not all at
// the hour's end (and at 10 s, hot rows into their segment every 10 buckets, segments into their
// chunk every two): a bucket of the first minute then reports the LSN of the chunk so far (the
// largest merged), reads answer exactly what plain rows answer at every minute, a late bucket
// into the part already merged lands in the chunk, and a reopened store carries on from its
// boundaries.
void TestChunks::openHourIsMergedIntoItsChunkInParts() {
  Stores st;
  const std::string path = (st.dir.path() + "/chunks.sqlite").toStdString();
  const uint64_t ids[] = {3, 300, 70000};
  auto lsn_of = [](int64_t t) { return uint64_t(1000 + (t - kT0)); };
  auto check_reads = [&](int64_t to) {
    for (uint64_t id : ids)
      for (size_t res : {size_t{0}, size_t{1}}) {
        const QString d =
            compare(Kind::kCounter, read_all(*st.rows, id, Kind::kCounter, res, kT0, to),
                    read_all(*st.chunks, id, Kind::kCounter, res, kT0, to));
        if (!d.isEmpty())
          return QString("series %1 res %2 to +%3: ").arg(id).arg(res).arg(to - kT0) + d;
      }
    return QString();
  };
  for (int minute = 0; minute < 75; ++minute) {
    QVERIFY(st.begin().is_ok());
    for (int64_t t = kT0 + minute * 60; t < kT0 + (minute + 1) * 60; ++t)
      for (uint64_t id : ids) {
        QVERIFY(st.merge(id, Kind::kCounter, 0, t, counter(double(id % 7 + (t % 5))), lsn_of(t))
                    .is_ok());
        if (t % 10 == 0)
          QVERIFY(st.merge(id, Kind::kCounter, 1, t, counter(double(id)), lsn_of(t)).is_ok());
      }
    QVERIFY(st.commit().is_ok());
    const int64_t watermark = kT0 + (minute + 1) * 60 + 2;
    QVERIFY(st.chunks->compact(watermark).is_ok());
    QVERIFY(st.rows->compact(watermark).is_ok());
    if (minute == 1) {
      // At 10 s, the open segment window's final buckets become its segment every 10 buckets:
      // the first 12 buckets are in it by now, and report its LSN.
      QCOMPARE(*st.chunks->stored_lsn(3, 1, kT0 + 10), lsn_of(kT0 + 110));
    }
    if (minute == 20) {
      // ... and two whole 10 s segments go into their chunk.
      QCOMPARE(*st.chunks->stored_lsn(3, 1, kT0 + 10), lsn_of(kT0 + 1190));
    }
    if (minute == 9) {
      // Ten minutes of segments: merged into the hour's chunk, whose LSN is the largest in it.
      QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 5), lsn_of(kT0 + 599));
      QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 599), lsn_of(kT0 + 599));
    }
    if (minute == 14) {
      // Between two merges the newest minutes are segments of their own.
      QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 5), lsn_of(kT0 + 599));
      QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 14 * 60 + 1), lsn_of(kT0 + 14 * 60 + 59));
      // A late bucket into the merged part, in both layouts.
      QVERIFY(st.merge(300, Kind::kCounter, 0, kT0 + 30, counter(1000), 5000).is_ok());
      QCOMPARE(*st.chunks->stored_lsn(300, 0, kT0 + 30), uint64_t(5000));
    }
    if (minute == 25) {
      // A reopened store reads its boundaries and goes on from them.
      st.chunks.reset();
      auto c = ShardStore::open(path, kRes);
      QVERIFY2(c.has_value(), c ? "" : c.status().to_string().c_str());
      st.chunks = std::move(*c);
    }
    const QString d = check_reads(watermark);
    QVERIFY2(d.isEmpty(), qPrintable(QString("after minute %1: ").arg(minute) + d));
  }
  // The hour closed into one chunk: every bucket of it reports the chunk's LSN.
  QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 5), lsn_of(kT0 + 3599));
  QCOMPARE(*st.chunks->stored_lsn(300, 0, kT0 + 3599), uint64_t(5000));  // the late bucket's
  QCOMPARE(*st.chunks->stored_lsn(3, 0, kT0 + 3600 + 5), lsn_of(kT0 + 3600 + 599));
}

// A shard file's SQLite WAL is checkpointed once it holds kWalBytes and cut back to that after:
// 24 MiB written in 100 KiB transactions never leave more than twice that beside the file (SQLite's
// own default let it grow to 1,000 pages, 16 MiB at 16 KiB pages, and keep it).
void TestChunks::sqliteWalIsCheckpointedAndCutBack() {
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/wal.sqlite").toStdString();
  auto db = Db::open(path, true, false, 16384);
  QVERIFY(db.has_value());
  QVERIFY((*db)->exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").is_ok());
  const std::string blob(100 * 1024, 'x');
  int64_t most = 0;
  for (int i = 0; i < 240; ++i) {
    auto st = (*db)->prepare("INSERT INTO t VALUES (?, ?)");
    QVERIFY(st.has_value());
    st->bind(1, int64_t{i}).bind(2, std::string_view(blob));
    QVERIFY(st->run().is_ok());
    most = std::max<int64_t>(most, static_cast<int64_t>(std::filesystem::file_size(path + "-wal")));
  }
  QVERIFY2(most <= 2 * kWalBytes, qPrintable(QString("the WAL reached %1 bytes").arg(most)));
  QVERIFY(most > 0);
}

// Encoding a minute of hot rows for many series is one long transaction: it calls `between` every
// few thousand series (the shard applies what arrived meanwhile, in memory), and what it writes is
// the same as without it.
void TestChunks::longCompactionLetsTheShardWorkBetween() {
  constexpr uint64_t kSeries = 10000;
  Stores st;
  QVERIFY(st.chunks->begin().is_ok());
  for (uint64_t id = 1; id <= kSeries; ++id)
    for (int i = 0; i < 3; ++i)
      QVERIFY(
          st.chunks
              ->merge_bucket(id, Kind::kCounter, 0, kT0 + 20 * i, counter(double(id)), id, nullptr)
              .is_ok());
  QVERIFY(st.chunks->commit().is_ok());
  int calls = 0;
  CompactStats cs;
  QVERIFY(st.chunks->compact(kT0 + 60, &cs, [&] { ++calls; }).is_ok());
  QCOMPARE(cs.segments, kSeries);
  QCOMPARE(calls, int(kSeries / 4096));  // after 4096 and 8192 series
  auto r = st.chunks->acquire_reader();
  QVERIFY(r.has_value());
  QVERIFY((*r)->begin_snapshot().is_ok());
  for (uint64_t id : {uint64_t(1), uint64_t(4097), kSeries}) {
    std::vector<StoredBucket> rows;
    QVERIFY((*r)->read(id, Kind::kCounter, 0, kT0, kT0 + 60, &rows).is_ok());
    QCOMPARE(rows.size(), size_t(3));
    for (const auto& b : rows) QCOMPARE(b.agg.sum, double(id));
  }
  (*r)->end_snapshot();
  st.chunks->release_reader(std::move(*r));
}

// A shard file written before chunks existed is converted when opened; nothing read changes.
void TestChunks::plainRowFileIsConverted() {
  QTemporaryDir dir;
  const std::string path = (dir.path() + "/shard-00.sqlite").toStdString();
  std::vector<StoredBucket> before;
  {
    auto rows = ShardStore::open(path, kRes, {StorageLayout::kPlainRows});
    QVERIFY(rows.has_value());
    QVERIFY((*rows)->begin().is_ok());
    QVERIFY((*rows)->put_series(SeriesDef{9, 0, 0, Kind::kGauge, "g", {}}).is_ok());
    for (int i = 0; i < 200; ++i)
      QVERIFY((*rows)
                  ->merge_bucket(9, Kind::kGauge, 0, kT0 + i, gauge(i, i, i, i, 1), 50 + i, nullptr)
                  .is_ok());
    QVERIFY((*rows)->commit().is_ok());
    before = read_all(**rows, 9, Kind::kGauge, 0, kT0, kT0 + 200);
    QCOMPARE(before.size(), size_t(200));
  }
  auto chunks = ShardStore::open(path, kRes);
  QVERIFY2(chunks.has_value(), chunks.status().to_string().c_str());
  QCOMPARE(*(*chunks)->get_meta("storage_format", 0), int64_t(cf::kStorageFormat));
  QVERIFY(compare(Kind::kGauge, before, read_all(**chunks, 9, Kind::kGauge, 0, kT0, kT0 + 200))
              .isEmpty());
  QVERIFY((*chunks)->compact(kT0 + 7200).is_ok());
  QVERIFY(compare(Kind::kGauge, before, read_all(**chunks, 9, Kind::kGauge, 0, kT0, kT0 + 200))
              .isEmpty());
  QCOMPARE(*(*chunks)->stored_lsn(9, 0, kT0), uint64_t(249));
  auto series = (*chunks)->load_series();
  QVERIFY(series.has_value() && series->size() == 1);
  // And it is not readable as plain rows any more.
  chunks->reset();
  QCOMPARE(ShardStore::open(path, kRes, {StorageLayout::kPlainRows}).status().code(),
           StatusCode::kInvalidArgument);
}

void TestChunks::retentionDropsWholeWindows() {
  Stores st;
  for (int i = 0; i < 3 * 3600; i += 5)
    QVERIFY(st.merge(3, Kind::kCounter, 0, kT0 + i, counter(1), 1).is_ok());
  QVERIFY(st.chunks->compact(kT0 + 2 * 3600 + 120).is_ok());  // two chunks, two segments, hot rows
  int64_t deleted = 0;
  QVERIFY(st.chunks->begin().is_ok());
  QVERIFY(st.chunks->delete_all_before(0, kT0 + 3600 + 1800, &deleted)
              .is_ok());  // half-way into the 2nd chunk
  QVERIFY(st.chunks->commit().is_ok());
  QCOMPARE(deleted, int64_t(1));
  auto left = read_all(*st.chunks, 3, Kind::kCounter, 0, kT0, kT0 + 3 * 3600);
  QCOMPARE(left.front().time, kT0 + 3600);  // the whole second hour stays until all of it is old
  QCOMPARE(left.size(), size_t(2 * 3600 / 5));
  QVERIFY(st.chunks->begin().is_ok());
  QVERIFY(st.chunks->delete_before(3, 0, kT0 + 3 * 3600, &deleted).is_ok());
  QVERIFY(st.chunks->commit().is_ok());
  QVERIFY(read_all(*st.chunks, 3, Kind::kCounter, 0, kT0, kT0 + 3 * 3600).empty());
}

// --- the whole query path: shards, compaction, open buckets, the counter fast path ---

namespace {

// A collector's aggregation and query half over one storage layout, driven by a manual clock.
struct Pipeline {
  QTemporaryDir dir;
  ManualClock clock{kT0 * 1000};
  SelfMetrics metrics;
  std::vector<Resolution> res = *parse_retention("1s:6h,10s:7d,1m:30d");
  SeriesCatalog catalog{2};
  std::vector<std::unique_ptr<Shard>> shards;
  std::unique_ptr<Router> router;
  std::unique_ptr<QueryEngine> engine;
  uint64_t lsn = 0;

  explicit Pipeline(StorageLayout layout) {
    std::vector<Shard*> raw;
    for (uint32_t i = 0; i < 2; ++i) {
      auto store = ShardStore::open((dir.path() + QString("/shard-%1.sqlite").arg(i)).toStdString(),
                                    res, {layout});
      ShardOptions o;
      o.index = i;
      o.resolutions = res;
      o.tick_ms = 1;
      o.retention_every_s = 1 << 30;
      shards.push_back(std::make_unique<Shard>(o, std::move(*store), clock, nullptr, metrics));
      raw.push_back(shards.back().get());
    }
    router = std::make_unique<Router>(raw);
    engine = std::make_unique<QueryEngine>(catalog, *router, res, clock);
    for (auto& s : shards) s->start();
  }
  ~Pipeline() {
    for (auto& s : shards) s->stop();
  }
  // Points (series, time, value) at clock `now_s`; returns once every shard has applied them.
  void send(int64_t now_s,
            const std::vector<std::tuple<const SeriesInfo*, int64_t, double>>& points,
            const std::vector<const SeriesInfo*>& fresh = {}) {
    clock.set_ms(now_s * 1000);
    std::vector<ShardWork> work(2);
    for (const auto* info : fresh) work[info->shard].new_series.push_back(info);
    for (const auto& [info, t, v] : points) {
      auto& w = work[info->shard];
      if (info->kind == Kind::kCounter)
        w.counters.push_back({info, t, v});
      else if (info->kind == Kind::kGauge)
        w.gauges.push_back({info, t, v, v, v, v, 1});
      else {
        Sketch sk;
        sk.add(v);
        w.dists.push_back({info, t, sk});
      }
    }
    std::vector<bool> busy(2);
    for (size_t i = 0; i < 2; ++i) busy[i] = work[i].points() > 0 || !work[i].new_series.empty();
    router->route(std::move(work), ++lsn);
    for (size_t i = 0; i < 2; ++i)
      while ((busy[i] && shards[i]->applied_lsn() < lsn) || shards[i]->queue_depth() > 0)
        QThread::usleep(50);  // a poll on the shard's progress (thousands of sends: no 50 ms steps)
  }
  // Returns once every shard has run a whole pass (apply, flush, compaction) at the current clock.
  // A shard applies what it took from its queue and then flushes and compacts, in one pass; so an
  // empty item applied after another was applied means the pass in between has finished.
  bool settle() {
    for (int round = 0; round < 2; ++round) {
      ++lsn;
      for (auto& s : shards) {
        ShardWork w;
        w.lsn = lsn;
        s->submit(std::move(w));
      }
      if (!tally::testing::eventually([&] {
            for (auto& s : shards)
              if (s->applied_lsn() < lsn) return false;
            return true;
          }))
        return false;
    }
    return true;
  }
};

}  // namespace

void TestChunks::queriesOverChunksEqualPlainRows_data() {
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("fn");
  QTest::addColumn<QString>("groupBy");
  QTest::addColumn<qint64>("step");
  QTest::addColumn<qint64>("from");
  QTest::addColumn<qint64>("to");
  const qint64 end = kT0 + 3720;
  for (qint64 step : {1, 7, 10, 60, 300}) {
    for (const char* fn : {"sum", "rate", "count", "avg", "max"}) {
      QTest::newRow(qPrintable(QString("req %1 by code, step %2").arg(fn).arg(step)))
          << "req" << fn << "code" << step << qint64(kT0) << end;
    }
    QTest::newRow(qPrintable(QString("req sum, no grouping, step %1, inside the chunk").arg(step)))
        << "req"
        << "sum"
        << "" << step << qint64(kT0 + 1234) << qint64(kT0 + 2345);
    QTest::newRow(qPrintable(QString("req sum by code,region step %1 across tiers").arg(step)))
        << "req"
        << "sum"
        << "code,region" << step << qint64(kT0 + 3500) << end + 100;
    QTest::newRow(qPrintable(QString("temp avg by region, step %1").arg(step)))
        << "temp"
        << "avg"
        << "region" << step << qint64(kT0) << end;
    QTest::newRow(qPrintable(QString("lat p90, step %1").arg(step)))
        << "lat"
        << "p90"
        << "" << step << qint64(kT0) << end;
  }
}

// The same points, with late ones, into a pipeline over chunks and one over plain rows; the
// chunk one has compacted its first hour into chunks and the minutes after into segments, and
// keeps the newest buckets as hot rows and open buckets. Every query answers the same; counter
// sums also equal the points sent.
void TestChunks::queriesOverChunksEqualPlainRows() {
  QFETCH(QString, metric);
  QFETCH(QString, fn);
  QFETCH(QString, groupBy);
  QFETCH(qint64, step);
  QFETCH(qint64, from);
  QFETCH(qint64, to);
  static std::unique_ptr<Pipeline> chunks, rows;
  static std::map<std::pair<std::string, int64_t>, double> sent;  // (code, second) -> req total
  if (!chunks) {
    chunks = std::make_unique<Pipeline>(StorageLayout::kChunks);
    rows = std::make_unique<Pipeline>(StorageLayout::kPlainRows);
    std::mt19937_64 rng(11);
    std::vector<std::pair<const SeriesInfo*, std::string>> all;
    for (auto* p : {chunks.get(), rows.get()}) {
      std::vector<const SeriesInfo*> created;
      auto make = [&](const char* m, Kind k, Tags tags) {
        bool fresh = false;
        auto s = p->catalog.get_or_create(m, tags, k, &fresh);
        created.push_back(*s);
        if (p == chunks.get()) {
          std::string code;
          for (const auto& t : tags)
            if (t.key == "code") code = t.value;
          all.push_back({*s, code});
        }
      };
      for (const char* code : {"200", "500"})
        for (const char* region : {"a", "b", "c"})
          make("req", Kind::kCounter, {{"code", code}, {"region", region}});
      for (const char* region : {"a", "b"}) make("temp", Kind::kGauge, {{"region", region}});
      make("lat", Kind::kDistribution, {{"region", "a"}});
      p->send(kT0, {}, created);
    }
    // An hour and two minutes, sparse, and now and then a point two minutes late.
    for (int64_t t = kT0; t < kT0 + 3720; t += 1 + static_cast<int64_t>(rng() % 9)) {
      std::vector<std::tuple<const SeriesInfo*, int64_t, double>> pts;
      for (const auto& [info, code] : all) {
        if (rng() % 3 == 0) continue;
        const int64_t when =
            rng() % 40 == 0 && t > kT0 + 200 ? t - 120 - static_cast<int64_t>(rng() % 60) : t;
        const double v = info->kind == Kind::kCounter ? static_cast<double>(rng() % 6)
                                                      : static_cast<double>(rng() % 100) - 20;
        pts.push_back({info, when, v});
        if (info->kind == Kind::kCounter) sent[{code, when}] += v;
      }
      for (auto* p : {chunks.get(), rows.get()}) {
        std::vector<std::tuple<const SeriesInfo*, int64_t, double>> mine;
        for (const auto& [info, when, v] : pts)
          mine.push_back(
              {*p->catalog.find(info->metric(), info->tags().materialize(), info->kind), when, v});
        p->send(t + 1, mine);
      }
    }
    // The clock moves past the last buckets; the shards' next pass writes and compacts them.
    for (auto* p : {chunks.get(), rows.get()}) {
      p->send(kT0 + 3725, {});
      QVERIFY(p->settle());
    }
  }
  RangeQuery q;
  q.metric = metric.toStdString();
  q.fn = *parse_fn(fn.toStdString());
  for (const auto& g : groupBy.split(',', Qt::SkipEmptyParts))
    q.group_by.push_back(g.toStdString());
  q.step = step;
  q.from = from;
  q.to = to;
  auto a = chunks->engine->range(q);
  auto b = rows->engine->range(q);
  QVERIFY2(a.has_value(), a.status().to_string().c_str());
  QVERIFY2(b.has_value(), b.status().to_string().c_str());
  QCOMPARE(a->resolution, b->resolution);
  QCOMPARE(a->series.size(), b->series.size());
  for (size_t i = 0; i < a->series.size(); ++i) {
    QVERIFY(a->series[i].group == b->series[i].group);
    QCOMPARE(a->series[i].partial_from.has_value(), b->series[i].partial_from.has_value());
    QCOMPARE(a->series[i].points.size(), b->series[i].points.size());
    for (size_t k = 0; k < a->series[i].points.size(); ++k) {
      QCOMPARE(a->series[i].points[k].first, b->series[i].points[k].first);
      QCOMPARE(a->series[i].points[k].second, b->series[i].points[k].second);
    }
  }
  if (metric == "req" && fn == "sum" && groupBy == "code") {
    for (const auto& sr : a->series) {
      for (const auto& [t, v] : sr.points) {
        double want = 0;
        for (auto it = sent.lower_bound({sr.group[0].value, t});
             it != sent.end() && it->first.first == sr.group[0].value &&
             it->first.second < t + step;
             ++it)
          want += it->second;
        QCOMPARE(v, want);
      }
    }
  }
}

QTEST_GUILESS_MAIN(TestChunks)
#include "tst_chunks.moc"
