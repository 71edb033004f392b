// The dashboard's item models under QAbstractItemModelTester: the metric tree (with the search
// proxy the browser puts on it) and the panel data table.
#include <QAbstractItemModelTester>
#include <QMimeData>
#include <QSortFilterProxyModel>
#include <QtTest>

#include "metric_tree_model.h"
#include "panel_table_model.h"
#include "resources.h"

using namespace tally::dash;

class TestDashboardModels : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { initTallyResources(); }
  void metricTreeStructure();
  void metricTreeResetAndSearch();
  void metricTreeMimeData();
  void panelTableModel();
};

static std::vector<MetricInfo> sampleMetrics() {
  return {{"api.errors", tally::Kind::kCounter, 12},
          {"api.latency_ms", tally::Kind::kDistribution, 5},
          {"api", tally::Kind::kGauge, 1},
          {"user.signup", tally::Kind::kCounter, 3},
          {"queue.depth", tally::Kind::kGauge, 1},
          {"a.b.c.d", tally::Kind::kCounter, 1},
          {"tally.collector.series", tally::Kind::kGauge, 1}};
}

void TestDashboardModels::metricTreeStructure() {
  MetricTreeModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
  model.setMetrics(sampleMetrics());
  // Roots: a, api, queue, tally, user (sorted by name).
  QCOMPARE(model.rowCount(), 5);
  QModelIndex api = model.index(1, 0);
  QCOMPARE(api.data().toString(), QString("api"));
  QVERIFY(api.data(MetricTreeModel::IsMetricRole).toBool());  // "api" is a metric and a prefix
  QCOMPARE(api.data(MetricTreeModel::KindRole).toString(), QString("gauge"));
  QCOMPARE(model.rowCount(api), 2);
  QModelIndex errors = model.index(0, 0, api);
  QCOMPARE(errors.data(MetricTreeModel::MetricNameRole).toString(), QString("api.errors"));
  QCOMPARE(model.index(0, MetricTreeModel::SeriesColumn, api).data().toLongLong(), 12);
  QCOMPARE(model.parent(errors), api);
  QVERIFY(!errors.data(Qt::DecorationRole).value<QIcon>().isNull());
  QModelIndex deep = model.indexOfMetric("a.b.c.d");
  QVERIFY(deep.isValid());
  QCOMPARE(deep.data().toString(), QString("d"));
  QVERIFY(!model.indexOfMetric("a.b").isValid());  // a prefix only
  QCOMPARE(model.kindOf("api.latency_ms"), QString("distribution"));
  QVERIFY(model.flags(errors) & Qt::ItemIsDragEnabled);
  QVERIFY(!(model.flags(model.index(0, 0)) & Qt::ItemIsDragEnabled));  // "a" is a prefix only
}

void TestDashboardModels::metricTreeResetAndSearch() {
  MetricTreeModel model;
  QSortFilterProxyModel proxy;
  proxy.setSourceModel(&model);
  proxy.setRecursiveFilteringEnabled(true);
  proxy.setFilterRole(MetricTreeModel::MetricNameRole);
  proxy.setFilterCaseSensitivity(Qt::CaseInsensitive);
  QAbstractItemModelTester t1(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
  QAbstractItemModelTester t2(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
  model.setMetrics(sampleMetrics());
  proxy.setFilterFixedString("LATENCY");
  QCOMPARE(proxy.rowCount(), 1);  // api > latency_ms
  QModelIndex api = proxy.index(0, 0);
  QCOMPARE(proxy.rowCount(api), 1);
  QCOMPARE(proxy.index(0, 0, api).data(MetricTreeModel::MetricNameRole).toString(),
           QString("api.latency_ms"));
  proxy.setFilterFixedString("");
  model.setMetrics({});
  QCOMPARE(model.rowCount(), 0);
  model.setMetrics(sampleMetrics());
  QCOMPARE(proxy.rowCount(), 5);
}

void TestDashboardModels::metricTreeMimeData() {
  MetricTreeModel model;
  model.setMetrics(sampleMetrics());
  QModelIndex errors = model.indexOfMetric("api.errors");
  std::unique_ptr<QMimeData> mime(model.mimeData({errors}));
  QVERIFY(mime);
  QCOMPARE(QString::fromUtf8(mime->data(kMetricMimeType)), QString("api.errors"));
  QCOMPARE(mime->text(), QString("api.errors"));
  QVERIFY(!model.mimeData({model.index(0, 0)}));  // a prefix does not drag
}

void TestDashboardModels::panelTableModel() {
  PanelTableModel model;
  QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
  model.setTable(
      {{"timestamp", "region", "value"}, {"100", "eu", "1.5"}, {"110", "us, west", "2"}});
  QCOMPARE(model.rowCount(), 2);
  QCOMPARE(model.columnCount(), 3);
  QCOMPARE(model.headerData(1, Qt::Horizontal).toString(), QString("region"));
  QCOMPARE(model.index(1, 1).data().toString(), QString("us, west"));
  QCOMPARE(model.index(0, 2).data(Qt::TextAlignmentRole).toInt(),
           int(Qt::AlignRight | Qt::AlignVCenter));
  model.setTable({});
  QCOMPARE(model.rowCount(), 0);
  QCOMPARE(model.columnCount(), 0);
}

QTEST_MAIN(TestDashboardModels)
#include "tst_dashboard_models.moc"
