// PromQL: the parser and the subset check as tables: must-parse queries with their type,
// must-not-parse queries with the exact error text, type errors (bad_data), constructs outside
// the subset (named), matchers (anchored regexes), durations and the name mapping.
#include <QtTest>

#include "query/prom_api.h"
#include "query/promql.h"

using namespace tally;
using namespace tally::collector;
using namespace tally::collector::promql;

Q_DECLARE_METATYPE(tally::collector::promql::ValueType)

namespace {

std::string sv(const QString& s) {
  return s.toStdString();
}

}  // namespace

class TestPromql : public QObject {
  Q_OBJECT
 private slots:
  void mustParse_data();
  void mustParse();
  void mustNotParse_data();
  void mustNotParse();
  void typeErrors_data();
  void typeErrors();
  void unsupported_data();
  void unsupported();
  void accepted_data();
  void accepted();
  void limits();
  void selectorStructure();
  void matchers_data();
  void matchers();
  void durations_data();
  void durations();
  void names_data();
  void names();
};

void TestPromql::mustParse_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<ValueType>("type");
  const struct {
    const char* query;
    ValueType type;
  } rows[] = {
      {"api_errors", ValueType::kVector},
      {"api_errors{}", ValueType::kVector},
      {"api_errors{status=\"500\"}", ValueType::kVector},
      {"api_errors{status!=\"500\",endpoint=~\"/a|/b\",host!~\"web-.*\",}", ValueType::kVector},
      {"{__name__=\"api_errors\"}", ValueType::kVector},
      {"{__name__=~\"api_.*\"}", ValueType::kVector},
      {"{\"api.errors\"}", ValueType::kVector},  // Prometheus 3 quoted name
      {"{\"api.errors\", \"http.method\"=\"GET\"}", ValueType::kVector},
      {"tally:requests:rate5m", ValueType::kVector},
      {"api_errors[5m]", ValueType::kMatrix},
      {"api_errors{status=\"500\"}[1h30m]", ValueType::kMatrix},
      {"rate(api_errors[5m])", ValueType::kVector},
      {"increase(api_errors{status=~'5..'}[1m])", ValueType::kVector},
      {"sum(rate(api_errors[5m]))", ValueType::kVector},
      {"sum by (endpoint) (rate(api_errors[5m]))", ValueType::kVector},
      {"sum(rate(api_errors[5m])) by (endpoint, status)", ValueType::kVector},
      {"sum without (host) (increase(api_errors[10m]))", ValueType::kVector},
      {"avg by (queue) (queue_depth)", ValueType::kVector},
      {"min(queue_depth)", ValueType::kVector},
      {"max by () (queue_depth)", ValueType::kVector},
      {"count by (endpoint,) (api_errors)", ValueType::kVector},
      {"sum by (group, on, bool) (x)", ValueType::kVector},  // keywords as label names
      {"api_latency_ms{quantile=\"0.99\"}", ValueType::kVector},
      {"max by (endpoint) (api_latency_ms{quantile=\"0.99\"})", ValueType::kVector},
      {"tally_quantile(0.99, api_latency_ms)", ValueType::kVector},
      {"tally_quantile by (endpoint) (0.5, api_latency_ms{region=\"eu\"})", ValueType::kVector},
      {"1", ValueType::kScalar},
      {"1 + 1", ValueType::kScalar},
      {"-2 ^ 2", ValueType::kScalar},
      {"2 ^ 3 ^ 2", ValueType::kScalar},
      {"(1 + 2) * 3 % 4 / 5 - 6", ValueType::kScalar},
      {"0x1F", ValueType::kScalar},
      {"1e3", ValueType::kScalar},
      {".5", ValueType::kScalar},
      {"Inf", ValueType::kScalar},
      {"-NaN", ValueType::kScalar},
      {"rate(api_errors[5m]) * 60", ValueType::kVector},
      {"100 * sum(rate(api_errors[5m]))", ValueType::kVector},
      {"-api_errors", ValueType::kVector},
      {"((api_errors))", ValueType::kVector},
      {"sum(\n  rate(api_errors[5m])  # per second\n)", ValueType::kVector},
  };
  for (const auto& r : rows)
    QTest::newRow(QString(r.query).replace('\n', "\\n").toUtf8()) << QString(r.query) << r.type;
}

void TestPromql::mustParse() {
  QFETCH(QString, query);
  QFETCH(ValueType, type);
  auto e = parse(sv(query));
  QVERIFY2(e.has_value(), e.status().message().c_str());
  ValueType got = ValueType::kString;
  auto problem = check(*e->root, &got);
  QVERIFY2(!problem, problem ? problem->message.c_str() : "");
  QCOMPARE(got, type);
}

void TestPromql::mustNotParse_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("error");
  const struct {
    const char* query;
    const char* error;
  } rows[] = {
      {"", "1:1: parse error: no expression found in input"},
      {"   # only a comment", "1:1: parse error: no expression found in input"},
      {"sum(api_errors", "1:4: parse error: unclosed left parenthesis"},
      {"(1 + 2", "1:1: parse error: unclosed left parenthesis"},
      {"api_errors)", "1:11: parse error: unexpected right parenthesis ')'"},
      {"api_errors{status=\"500\"", "1:11: parse error: unexpected end of input inside braces"},
      {"api_errors{status=500}",
       "1:19: parse error: unexpected number \"500\" in label matching, expected string"},
      {"api_errors{status==\"500\"}",
       "1:18: parse error: unexpected \"==\" in label matching, expected one of \"=\", \"!=\", "
       "\"=~\" or \"!~\""},
      {"api_errors{status}",
       "1:18: parse error: unexpected \"}\" in label matching, expected one of \"=\", \"!=\", "
       "\"=~\" or \"!~\""},
      {"api_errors{status=\"a\" endpoint=\"b\"}",
       "1:23: parse error: unexpected identifier \"endpoint\" in label matching, expected \",\" or "
       "\"}\""},
      {"api_errors{status=\"unterminated}", "1:19: parse error: unterminated quoted string"},
      {"api_errors{status=~\"(\"}", "1:20: parse error: invalid regular expression \"(\""},
      {"{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"},
      {"{status=~\".*\"}",
       "1:1: parse error: vector selector must contain at least one non-empty matcher"},
      {"api_errors{__name__=\"other\"}",
       "1:1: parse error: metric name must not be set twice: \"api_errors\" or \"other\""},
      {"api_errors[5]", "1:12: parse error: unexpected number \"5\" in range, expected duration"},
      {"api_errors[5x]", "1:12: parse error: bad number or duration syntax: \"5x\""},
      {"api_errors[5m1h]", "1:12: parse error: bad duration \"5m1h\""},
      {"api_errors[0s]", "1:11: parse error: range duration must be greater than 0"},
      {"rate(api_errors[5m])[5m]", "1:21: parse error: ranges only allowed for vector selectors"},
      {"api_errors[5m][5m]", "1:15: parse error: ranges only allowed for vector selectors"},
      {"sum by (endpoint (api_errors)",
       "1:18: parse error: unexpected \"(\" in grouping opts, expected \",\" or \")\""},
      {"sum by (\"x\" endpoint) (y)",
       "1:13: parse error: unexpected identifier \"endpoint\" in grouping opts, expected \",\" or "
       "\")\""},
      {"sum by (a) (x) by (b)",
       "1:16: parse error: grouping may be given only once (before or after the expression)"},
      {"sum(a, b)",
       "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, "
       "got 2"},
      {"tally_quantile(api_latency_ms)",
       "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, "
       "got 1"},
      {"sum", "1:4: parse error: unexpected end of input in aggregation, expected \"(\""},
      {"1 +", "1:4: parse error: unexpected end of input"},
      {"api_errors $ 2", "1:12: parse error: unexpected character: '$'"},
      {"api_errors ! 2", "1:12: parse error: unexpected character after '!': ' '"},
      {"5m", "1:1: parse error: unexpected duration \"5m\""},
      {"1.5.5", "1:1: parse error: bad number or duration syntax: \"1.5.5\""},
      {"by (x)", "1:1: parse error: unexpected identifier \"by\""},
      {"api_errors offset",
       "1:18: parse error: unexpected end of input in offset, expected duration"},
      {"api_errors offset 1m offset 2m", "1:22: parse error: offset may not be set multiple times"},
      {"api_errors{\"a.b\"=\"x\", \"c\"}",
       "1:23: parse error: metric name must not be set twice: \"api_errors\" or \"c\""},
      {"\"\\q\"", "1:2: parse error: unknown escape sequence '\\q' in string"},
      {"a\n+ )", "2:3: parse error: unexpected right parenthesis ')'"},
  };
  for (const auto& r : rows)
    QTest::newRow(QString(r.query).replace('\n', "\\n").toUtf8())
        << QString(r.query) << QString(r.error);
}

void TestPromql::mustNotParse() {
  QFETCH(QString, query);
  QFETCH(QString, error);
  auto e = parse(sv(query));
  QVERIFY2(!e.has_value(), "parsed");
  QCOMPARE(e.status().code(), StatusCode::kInvalidArgument);
  QCOMPARE(QString::fromStdString(e.status().message()).left(error.size()), error);
}

void TestPromql::typeErrors_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("error");
  const struct {
    const char* query;
    const char* error;
  } rows[] = {
      {"rate(api_errors)",
       "expected type range vector in call to function \"rate\", got instant vector"},
      {"increase(1)", "expected type range vector in call to function \"increase\", got scalar"},
      {"rate(a[5m], b[5m])", "expected 1 argument(s) in call to \"rate\", got 2"},
      {"sum(api_errors[5m])",
       "expected type instant vector in aggregation expression, got range vector"},
      {"api_errors[5m] + 1", "binary expression must contain only scalar and instant vector types"},
      {"-api_errors[5m]",
       "unary expression only allowed on expressions of type scalar or instant vector, got \"range "
       "vector\""},
      {"nosuchfn(api_errors)", "unknown function with name \"nosuchfn\""},
      {"tally_quantile(1.5, api_latency_ms)", "tally_quantile: quantile must be between 0 and 1"},
      {"1 > 2", "comparisons between scalars must use BOOL modifier"},
      {"a and 1", "set operator \"and\" not allowed in binary scalar expression"},
      {"a + on(x) 1", "vector matching only allowed between instant vectors"},
      {"a + bool b", "bool modifier can only be used on comparison operators"},
      {"a and on(x) group_left b", "no grouping allowed for \"and\" operation"},
      {"topk(\"a\", x)", "expected type scalar in aggregation parameter, got string"},
      {"count_values(1, x)", "expected type string in aggregation parameter, got scalar"},
      {"clamp(x, 1)", "expected 3 argument(s) in call to \"clamp\", got 2"},
      {"label_replace(x, 1, \"a\", \"b\", \"c\")",
       "expected type string in call to function \"label_replace\", got scalar"},
      {"time(1)", "expected 0 argument(s) in call to \"time\", got 1"},
  };
  for (const auto& r : rows)
    QTest::newRow(QString(r.query).replace('\n', "\\n").toUtf8())
        << QString(r.query) << QString(r.error);
}

void TestPromql::typeErrors() {
  QFETCH(QString, query);
  QFETCH(QString, error);
  auto e = parse(sv(query));
  QVERIFY2(e.has_value(), e.status().message().c_str());
  ValueType t;
  auto p = check(*e->root, &t);
  QVERIFY(p.has_value());
  QCOMPARE(p->kind, Problem::Kind::kBadData);
  QCOMPARE(QString::fromStdString(p->message).left(error.size()), error);
}

void TestPromql::unsupported_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("error");
  const struct {
    const char* query;
    const char* error;
  } rows[] = {
      {"sort_by_label(api_errors, \"endpoint\")", "function sort_by_label() is not supported"},
      {"histogram_count(rate(x[5m]))",
       "function histogram_count() is not supported: Tally has no native histograms"},
      {"api_errors[1500ms]", "range [1500ms] is not a whole number of seconds"},
      {"tally_quantile(x, api_latency_ms)",
       "tally_quantile's first argument must be a number literal"},
      {"tally_quantile(0.5, rate(x[5m]))",
       "tally_quantile needs a distribution selector as its second argument"},
  };
  for (const auto& r : rows)
    QTest::newRow(QString(r.query).replace('\n', "\\n").toUtf8())
        << QString(r.query) << QString(r.error);
}

void TestPromql::unsupported() {
  QFETCH(QString, query);
  QFETCH(QString, error);
  auto e = parse(sv(query));
  QVERIFY2(e.has_value(), e.status().message().c_str());
  ValueType t;
  auto p = check(*e->root, &t);
  QVERIFY(p.has_value());
  QCOMPARE(p->kind, Problem::Kind::kUnsupported);
  QCOMPARE(QString::fromStdString(p->message).left(error.size()), error);
}

// What the evaluator answers (it was refused with 422 before): check() accepts it with this type.
void TestPromql::accepted_data() {
  QTest::addColumn<QString>("query");
  QTest::addColumn<QString>("type");
  const struct {
    const char* query;
    const char* type;
  } rows[] = {
      {"label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")", "instant vector"},
      {"label_join(x, \"a\", \",\", \"b\", \"c\")", "instant vector"},
      {"topk(5, api_errors)", "instant vector"},
      {"bottomk by (a) (scalar(b), api_errors)", "instant vector"},
      {"quantile(0.9, queue_depth)", "instant vector"},
      {"stddev(queue_depth)", "instant vector"},
      {"stdvar without (a) (queue_depth)", "instant vector"},
      {"count_values(\"v\", queue_depth)", "instant vector"},
      {"group by (a) (x)", "instant vector"},
      {"api_errors offset 5m", "instant vector"},
      {"api_errors offset -5m", "instant vector"},
      {"api_errors @ 1700000000", "instant vector"},
      {"rate(api_errors[5m] @ end())", "instant vector"},
      {"increase(api_errors[5m] offset 1h)", "instant vector"},
      {"a / b", "instant vector"},
      {"a > 5", "instant vector"},
      {"a == bool 5", "instant vector"},
      {"1 < bool 2", "scalar"},
      {"a and b", "instant vector"},
      {"a or b", "instant vector"},
      {"a unless b", "instant vector"},
      {"a * on (x) b", "instant vector"},
      {"a + ignoring (x) group_left (y) b", "instant vector"},
      {"a - on (x) group_right b", "instant vector"},
      {"2 atan2 3", "scalar"},
      {"sum(rate(a[5m])) or vector(0)", "instant vector"},
      {"time()", "scalar"},
      {"scalar(a) * 2", "scalar"},
      {"sort_desc(abs(ceil(floor(round(a, 0.5)))))", "instant vector"},
      {"clamp(a, 0, 1) + clamp_min(a, 0) - clamp_max(a, 1)", "instant vector"},
      {"exp(ln(log2(log10(sqrt(sgn(a))))))", "instant vector"},
      {"absent(nosuch{a=\"b\"})", "instant vector"},
      {"hour() + minute(a) + day_of_week() + month() + year() + days_in_month()", "instant vector"},
  };
  for (const auto& r : rows)
    QTest::newRow(QString(r.query).toUtf8()) << QString(r.query) << QString(r.type);
}

void TestPromql::accepted() {
  QFETCH(QString, query);
  QFETCH(QString, type);
  auto e = parse(sv(query));
  QVERIFY2(e.has_value(), e.status().message().c_str());
  ValueType t;
  auto p = check(*e->root, &t);
  QVERIFY2(!p.has_value(), p ? p->message.c_str() : "");
  QCOMPARE(QString(value_type_name(t)), type);
}

// Length and depth are bounded (configurable); the error names the limit and the setting.
void TestPromql::limits() {
  Limits small{20, 4};
  auto longq = parse("sum(rate(api_errors[5m]))", small);
  QVERIFY(!longq.has_value());
  QCOMPARE(QString::fromStdString(longq.status().message()),
           QString("query is 25 bytes long; the limit is 20 (the collector's promql_max_length)"));
  QVERIFY(parse("sum(x)", small).has_value());
  auto deep = parse("((((x))))", small);
  QVERIFY(!deep.has_value());
  QVERIFY(deep.status().message().find("nested more than 4 levels deep") != std::string::npos);
  auto chain = parse("x+x+x+x+x", small);  // parsed in a loop, but a tree 5 deep
  QVERIFY(!chain.has_value());
  QVERIFY(chain.status().message().find("promql_max_depth") != std::string::npos);
  // The defaults take what dashboards send, and refuse a pathological nesting without a crash.
  QVERIFY(parse("sum by (a) (rate(x[5m])) / ignoring(b) group_left sum(rate(y[5m]))").has_value());
  QVERIFY(!parse(std::string(100000, '(')).has_value());
  QVERIFY(!parse(std::string(4000, '(') + "1" + std::string(4000, ')'), Limits{1 << 20, 128})
               .has_value());
}

void TestPromql::selectorStructure() {
  auto e = parse("sum by (endpoint) (rate(api_errors{status=~\"5..\", host!=\"b\"}[5m]))");
  QVERIFY(e.has_value());
  const Node& agg = *e->root;
  QCOMPARE(agg.type, Node::Type::kAggregate);
  QCOMPARE(agg.text, std::string("sum"));
  QVERIFY(agg.has_grouping && !agg.without);
  QCOMPARE(agg.grouping, std::vector<std::string>{"endpoint"});
  const Node& call = agg.arg(0);
  QCOMPARE(call.type, Node::Type::kCall);
  QCOMPARE(call.text, std::string("rate"));
  const Node& sel = call.arg(0);
  QCOMPARE(sel.type, Node::Type::kSelector);
  QCOMPARE(sel.metric, std::string("api_errors"));
  QCOMPARE(*sel.range_ms, int64_t(300000));
  QCOMPARE(sel.matchers.size(), size_t(2));
  QCOMPARE(sel.matchers[0].name, std::string("status"));
  QCOMPARE(sel.matchers[0].op, Matcher::Op::kRe);
  QCOMPARE(sel.matchers[1].op, Matcher::Op::kNe);

  // {__name__="x"} is the same selector as x; strings decode Go escapes.
  auto n = parse("{__name__=\"api_errors\", path=\"a\\\"b\\u00e9\\x41\"}");
  QVERIFY(n.has_value());
  QCOMPARE(n->root->metric, std::string("api_errors"));
  QCOMPARE(n->root->matchers.size(), size_t(1));
  QCOMPARE(n->root->matchers[0].value, std::string("a\"b\xc3\xa9"
                                                   "A"));

  // Precedence: 1 + 2 * 3 ^ 2 ^ 0.5 groups as 1 + (2 * (3 ^ (2 ^ 0.5))); -2 ^ 2 is -(2 ^ 2).
  auto p = parse("1 + 2 * 3 ^ 2 ^ 0.5");
  QVERIFY(p.has_value());
  QCOMPARE(p->root->text, std::string("+"));
  QCOMPARE(p->root->arg(1).text, std::string("*"));
  QCOMPARE(p->root->arg(1).arg(1).text, std::string("^"));
  QCOMPARE(p->root->arg(1).arg(1).arg(1).text, std::string("^"));
  auto u = parse("-2 ^ 2");
  QVERIFY(u.has_value());
  QCOMPARE(u->root->type, Node::Type::kUnary);
  auto s = parse_selector("rate(x[5m])");
  QVERIFY(!s.has_value());
  QVERIFY(parse_selector("{__name__=~\"api_.*\", env=\"prod\"}").has_value());
}

void TestPromql::matchers_data() {
  QTest::addColumn<QString>("selector");
  QTest::addColumn<QString>("value");
  QTest::addColumn<bool>("matches");
  const struct {
    const char* selector;
    const char* value;
    bool matches;
  } rows[] = {
      {"x{l=\"500\"}", "500", true},
      {"x{l=\"500\"}", "5000", false},
      {"x{l!=\"500\"}", "503", true},
      {"x{l=~\"5..\"}", "503", true},
      {"x{l=~\"5..\"}", "5030", false},  // anchored at both ends
      {"x{l=~\"50\"}", "503", false},
      {"x{l=~\"/a|/b\"}", "/b", true},  // alternation is anchored as a whole
      {"x{l=~\"/a|/b\"}", "/bb", false},
      {"x{l!~\"5..\"}", "404", true},
      {"x{l!~\"5..\"}", "500", false},
      {"x{l=~\"(?i)get\"}", "GET", true},  // RE2's (?i) flag
      {"x{l=~\"get\"}", "GET", false},
      {"x{l=\"\"}", "", true},  // an absent label is ""
      {"x{l=~\".*\"}", "", true},
      {"x{l=~\".+\"}", "", false},
      {"x{l!=\"\"}", "", false},
      // RE2 syntax, as Prometheus: classes by property, named groups, '.' across a newline.
      {"x{l=~\"\\\\pL+\"}", "abc", true},
      {"x{l=~\"(?P<g>a)b\"}", "ab", true},
      {"x{l=~\"a.b\"}", "a\nb", true},
  };
  for (const auto& r : rows)
    QTest::newRow((std::string(r.selector) + " ~ " + r.value).c_str())
        << QString(r.selector) << QString(r.value) << r.matches;
}

void TestPromql::matchers() {
  QFETCH(QString, selector);
  QFETCH(QString, value);
  QFETCH(bool, matches);
  auto e = parse_selector(sv(selector));
  QVERIFY2(e.has_value(), e.status().message().c_str());
  QCOMPARE(e->root->matchers.size(), size_t(1));
  QCOMPARE(e->root->matchers[0].matches(sv(value)), matches);
}

void TestPromql::durations_data() {
  QTest::addColumn<QString>("text");
  QTest::addColumn<qint64>("ms");
  QTest::newRow("90s") << "90s" << qint64(90000);
  QTest::newRow("5m") << "5m" << qint64(300000);
  QTest::newRow("1h30m") << "1h30m" << qint64(5400000);
  QTest::newRow("500ms") << "500ms" << qint64(500);
  QTest::newRow("1m0s") << "1m0s" << qint64(60000);  // how Grafana may write $__rate_interval
  QTest::newRow("2d") << "2d" << qint64(172800000);
  QTest::newRow("1w") << "1w" << qint64(604800000);
  QTest::newRow("1y") << "1y" << qint64(31536000000);
  QTest::newRow("bad order") << "5m1h" << qint64(-1);
  QTest::newRow("repeated unit") << "1m1m" << qint64(-1);
  QTest::newRow("no unit") << "5" << qint64(-1);
  QTest::newRow("unknown unit") << "5x" << qint64(-1);
  QTest::newRow("empty") << "" << qint64(-1);
}

void TestPromql::durations() {
  QFETCH(QString, text);
  QFETCH(qint64, ms);
  auto d = parse_prom_duration(sv(text));
  if (ms < 0) {
    QVERIFY(!d.has_value());
    return;
  }
  QVERIFY2(d.has_value(), d.status().message().c_str());
  QCOMPARE(*d, int64_t(ms));
}

void TestPromql::names_data() {
  QTest::addColumn<QString>("tally");
  QTest::addColumn<QString>("metric");
  QTest::addColumn<QString>("label");
  QTest::newRow("plain") << "api_errors"
                         << "api_errors"
                         << "api_errors";
  QTest::newRow("dots") << "api.latency.ms"
                        << "api_latency_ms"
                        << "api_latency_ms";
  QTest::newRow("dash") << "http-requests"
                        << "http_requests"
                        << "http_requests";
  QTest::newRow("colon") << "job:rate:5m"
                         << "job:rate:5m"
                         << "job_rate_5m";  // ':' is legal in metric names only
  QTest::newRow("mixed") << "a.b-c:d_e"
                         << "a_b_c:d_e"
                         << "a_b_c_d_e";
}

void TestPromql::names() {
  QFETCH(QString, tally);
  QFETCH(QString, metric);
  QFETCH(QString, label);
  QCOMPARE(QString::fromStdString(prom_metric_name(sv(tally))), metric);
  QCOMPARE(QString::fromStdString(prom_label_name(sv(tally))), label);
}

QTEST_GUILESS_MAIN(TestPromql)
#include "tst_promql.moc"
