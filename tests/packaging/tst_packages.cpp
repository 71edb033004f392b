// The Debian packages (installer/package.cmake): cpack builds them from this build tree into a
// scratch directory; each .deb is unpacked with dpkg-deb into one scratch root, as if installed.
// Checked: the files each package must hold, control fields and maintainer scripts, the systemd
// unit (systemd-analyze verify and its hardening score, when systemd-analyze is there), and the
// SDK as a user meets it: a tiny service built against the unpacked headers and libraries with
// find_package(Tally) (shared and static) and with pkg-config, run against the packaged collector.
#include <QDirIterator>
#include <QProcess>
#include <QtTest>

#include "../collector/collector_process.h"
#include "tally/common/time_bucket.h"

using namespace tally::testing;

namespace {

struct Run {
  int code = -1;
  QString out;  // stdout and stderr
};

Run run(const QString& program, const QStringList& args, const QString& cwd = {},
        const QStringList& env = {}, int timeout_ms = 300000) {
  QProcess p;
  p.setProcessChannelMode(QProcess::MergedChannels);
  if (!cwd.isEmpty()) p.setWorkingDirectory(cwd);
  if (!env.isEmpty()) {
    QProcessEnvironment e = QProcessEnvironment::systemEnvironment();
    for (const auto& kv : env) e.insert(kv.section('=', 0, 0), kv.section('=', 1));
    p.setProcessEnvironment(e);
  }
  p.start(program, args);
  Run r;
  if (!p.waitForStarted(10000)) {
    r.out = program + ": cannot start";
    return r;
  }
  if (!p.waitForFinished(timeout_ms)) {
    p.kill();
    p.waitForFinished(5000);
    r.out = program + ": timed out\n" + QString::fromLocal8Bit(p.readAll());
    return r;
  }
  r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
  r.out = QString::fromLocal8Bit(p.readAll());
  return r;
}

#define RUN_OK(r)                                       \
  do {                                                  \
    if ((r).code != 0) qWarning().noquote() << (r).out; \
    QCOMPARE((r).code, 0);                              \
  } while (0)

bool write_file(const QString& path, const QByteArray& text) {
  QFile f(path);
  return f.open(QIODevice::WriteOnly | QIODevice::Truncate) && f.write(text) == text.size();
}

const char* kServiceMain = R"(// A service that counts through the installed Tally SDK.
#include <tally/client.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  tally::ClientOptions o;
  o.endpoint = argv[1];
  o.flush_interval = std::chrono::milliseconds(200);
  o.close_timeout = std::chrono::milliseconds(3000);
  tally::Client client(o);
  auto requests = client.counter("tiny.requests", {{"build", argv[2]}});
  for (int i = 0; i < 1000; ++i) requests.add();
  const bool delivered = client.flush(std::chrono::seconds(10));
  const tally::ClientStats s = client.stats();
  std::printf("delivered=%d acked=%llu dropped=%llu\n", delivered ? 1 : 0,
              static_cast<unsigned long long>(s.batches_acked), static_cast<unsigned long long>(s.batches_dropped));
  return delivered && s.batches_dropped == 0 ? 0 : 1;
}
)";

const char* kServiceCMake = R"(cmake_minimum_required(VERSION 3.20)
project(tiny_service CXX)
)"
                            // the release it is written against (0.x: a minor version may break)
                            "find_package(Tally " TALLY_VERSION R"( REQUIRED)
add_executable(service_shared main.cpp)
target_link_libraries(service_shared PRIVATE Tally::tally)
add_executable(service_static main.cpp)
target_link_libraries(service_static PRIVATE Tally::tally_static)
)";

}  // namespace

class TestPackages : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase();
  void collectorPackageHoldsServiceConfigAndScripts();
  void collectorUnitVerifies();
  void dashboardPackageHoldsDesktopFileAndIcon();
  void sdkPackageHoldsHeadersLibrariesAndConfigs();
  void serviceBuildsWithCMakeAndCountsIntoThePackagedCollector();
  void serviceBuildsWithPkgConfig();

 private:
  QString deb(const QString& package) const { return debs_.value(package); }
  QString field(const QString& package, const QString& name) const {
    return run("dpkg-deb", {"-f", deb(package), name}).out.trimmed();
  }
  // The SDK's library directory inside the root (lib or lib/<multiarch>).
  QString libdir() const {
    QDirIterator it(root_ + "/usr/lib", {"libtally.a"}, QDir::Files, QDirIterator::Subdirectories);
    return it.hasNext() ? QFileInfo(it.next()).absolutePath() : QString();
  }
  // Counts tiny.requests{build=<build>} through the packaged collector's HTTP API.
  double counted(const CollectorProcess& c, const std::string& build, int64_t from) const {
    json q = c.get("/api/query?metric=tiny.requests&filter=build%3D" + build +
                   "&from=" + std::to_string(from - 5) +
                   "&to=" + std::to_string(tally::SystemClock::instance().now_s() + 5));
    return total(q);
  }
  bool start_packaged_collector(CollectorProcess& c) {
    // The packaged binary, run through CollectorProcess (which passes its own binary first).
    c.set_wrapper({"sh", "-c", "shift; exec \"$0\" \"$@\"", root_ + "/usr/bin/tally-collector"});
    return c.start();
  }

  QTemporaryDir tmp_;
  QString root_;
  QMap<QString, QString> debs_;  // package name -> .deb path
  bool dashboard_ = false;
};

// Under a sanitizer preset the packaged libtally is instrumented (-fsanitize=...): a service built
// without the sanitizer cannot link it (undefined __tsan_* / __asan_* symbols).
constexpr bool kSanitized = sizeof(TALLY_SANITIZE) > 1;
constexpr const char* kSanitizedNote = "the packaged SDK is built with -fsanitize=" TALLY_SANITIZE
                                       ", which a service built without it cannot link";

void TestPackages::initTestCase() {
  if (QStandardPaths::findExecutable("dpkg-deb").isEmpty()) QSKIP("dpkg-deb not installed");
  QVERIFY(tmp_.isValid());
  const QString out = tmp_.path() + "/debs";
  root_ = tmp_.path() + "/root";
  QVERIFY(QDir().mkpath(out));
  QVERIFY(QDir().mkpath(root_));
  Run cpack =
      run(TALLY_CPACK,
          {"-G", "DEB", "--config", QString(TALLY_BUILD_DIR) + "/CPackConfig.cmake", "-B", out},
          TALLY_BUILD_DIR);
  RUN_OK(cpack);
  for (const QFileInfo& f : QDir(out).entryInfoList({"*.deb"}, QDir::Files)) {
    const QString name = run("dpkg-deb", {"-f", f.absoluteFilePath(), "Package"}).out.trimmed();
    debs_[name] = f.absoluteFilePath();
    RUN_OK(run("dpkg-deb", {"-x", f.absoluteFilePath(), root_}));
    const QString control = tmp_.path() + "/control/" + name;
    QVERIFY(QDir().mkpath(control));
    RUN_OK(run("dpkg-deb", {"-e", f.absoluteFilePath(), control}));
  }
  qInfo().noquote() << "packages:" << QStringList(debs_.keys()).join(", ");
  QVERIFY(debs_.contains("tally-collector"));
  QVERIFY(debs_.contains("libtally-dev"));
  dashboard_ = debs_.contains("tally-dashboard");
  for (const auto& [name, path] : debs_.asKeyValueRange())
    QVERIFY2(QFileInfo(path).fileName().startsWith(name + "_" TALLY_VERSION "-1_"),
             qPrintable(path));
}

void TestPackages::collectorPackageHoldsServiceConfigAndScripts() {
  for (const char* f : {"/usr/bin/tally-collector", "/usr/bin/tally",
                        "/usr/lib/systemd/system/tally-collector.service",
                        "/etc/tally/collector.toml", "/usr/share/doc/tally-collector/README.md"})
    QVERIFY2(QFileInfo::exists(root_ + f), f);
  QVERIFY(QFileInfo(root_ + "/usr/bin/tally-collector").isExecutable());
  // Depends from dpkg-shlibdeps: the shared libraries the binaries link.
  const QString depends = field("tally-collector", "Depends");
  for (const char* lib : {"libzmq5", "libsqlite3-0", "libprotobuf", "libstdc++6"})
    QVERIFY2(depends.contains(lib), qPrintable("Depends: " + depends));
  // The config is a conffile; the maintainer scripts are there, executable and parse.
  const QString control = tmp_.path() + "/control/tally-collector";
  QFile conffiles(control + "/conffiles");
  QVERIFY(conffiles.open(QIODevice::ReadOnly));
  QCOMPARE(QString(conffiles.readAll()).trimmed(), QString("/etc/tally/collector.toml"));
  for (const char* script : {"postinst", "prerm", "postrm"}) {
    const QString path = control + "/" + script;
    QVERIFY2(QFileInfo(path).isExecutable(), script);
    RUN_OK(run("sh", {"-n", path}));
  }
  QFile postinst(control + "/postinst");
  QVERIFY(postinst.open(QIODevice::ReadOnly));
  const QString text = postinst.readAll();
  QVERIFY(text.contains("--system") && text.contains("tally"));  // the tally system user
  QVERIFY(text.contains("/var/lib/tally"));
  // The config may hold credentials: 0640 in the package, root:tally once installed.
  QVERIFY(
      text.contains("dpkg-statoverride --update --add root tally 0640 /etc/tally/collector.toml"));
  const auto perms = QFileInfo(root_ + "/etc/tally/collector.toml").permissions();
  QVERIFY(!(perms & QFileDevice::ReadOther) && !(perms & QFileDevice::WriteGroup));
  // The packaged binary reads the packaged config: data in /var/lib/tally.
  Run printed = run(root_ + "/usr/bin/tally-collector",
                    {"--config", root_ + "/etc/tally/collector.toml", "--print-config"});
  RUN_OK(printed);
  QVERIFY2(printed.out.contains("data_dir = \"/var/lib/tally\""), qPrintable(printed.out));
  RUN_OK(run(root_ + "/usr/bin/tally", {"--help"}));
}

void TestPackages::collectorUnitVerifies() {
  const QString unit_path = root_ + "/usr/lib/systemd/system/tally-collector.service";
  QFile unit(unit_path);
  QVERIFY(unit.open(QIODevice::ReadOnly));
  const QString text = unit.readAll();
  for (const char* line :
       {"User=tally", "ExecStart=/usr/bin/tally-collector --config /etc/tally/collector.toml",
        "StateDirectory=tally", "ReadWritePaths=/var/lib/tally", "ProtectSystem=strict",
        "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes", "WantedBy=multi-user.target",
        "MemoryMax=4G", "TasksMax=512",
        // ZeroMQ aborts a bind without netlink (getifaddrs); installer/upgrade-check.sh boots it.
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"})
    QVERIFY2(text.contains(QString(line) + "\n"), line);

  const QString analyze = QStandardPaths::findExecutable("systemd-analyze");
  if (analyze.isEmpty()) QSKIP("systemd-analyze not installed; unit checked by content only");
  // verify wants ExecStart= to exist: a copy of the unit that starts the unpacked binary.
  const QString copy = tmp_.path() + "/tally-collector.service";
  QVERIFY(write_file(
      copy,
      QString(text).replace("ExecStart=/usr/bin/", "ExecStart=" + root_ + "/usr/bin/").toUtf8()));
  Run verify = run(analyze, {"verify", copy});
  RUN_OK(verify);
  QVERIFY2(!verify.out.contains("Unknown key") && !verify.out.contains("Unknown lvalue") &&
               !verify.out.contains("tally-collector.service:"),
           qPrintable(verify.out));
  // systemd's own exposure score of the hardening: 0 (locked down) .. 10 (unprotected).
  Run security = run(analyze, {"security", "--offline=yes", copy});
  QRegularExpression score(R"(Overall exposure level for tally-collector\.service: ([0-9.]+))");
  auto m = score.match(security.out);
  QVERIFY2(m.hasMatch(), qPrintable(security.out));
  qInfo().noquote() << "systemd-analyze security:" << m.captured(0);
  QVERIFY2(m.captured(1).toDouble() <= 2.0, qPrintable(m.captured(0)));
}

void TestPackages::dashboardPackageHoldsDesktopFileAndIcon() {
  if (!dashboard_) QSKIP("built without the dashboard (TALLY_BUILD_APP=OFF)");
  for (const char* f :
       {"/usr/bin/tally-dashboard", "/usr/share/applications/tally-dashboard.desktop",
        "/usr/share/icons/hicolor/scalable/apps/tally-dashboard.svg"})
    QVERIFY2(QFileInfo::exists(root_ + f), f);
  QFile desktop(root_ + "/usr/share/applications/tally-dashboard.desktop");
  QVERIFY(desktop.open(QIODevice::ReadOnly));
  const QString text = desktop.readAll();
  QVERIFY(text.contains("Exec=tally-dashboard"));
  QVERIFY(text.contains("Icon=tally-dashboard"));
  const QString validate = QStandardPaths::findExecutable("desktop-file-validate");
  if (!validate.isEmpty())
    RUN_OK(run(validate, {root_ + "/usr/share/applications/tally-dashboard.desktop"}));
  const QString depends = field("tally-dashboard", "Depends");
  for (const char* dep : {"libqt6widgets6", "libqt6charts6", "qt6-qpa-plugins", "libqt6keychain1"})
    QVERIFY2(depends.contains(dep), qPrintable("Depends: " + depends));
  // Nothing of the collector's or the SDK's files in the dashboard package.
  Run contents = run("dpkg-deb", {"-c", deb("tally-dashboard")});
  QVERIFY(!contents.out.contains("tally-collector") && !contents.out.contains("libtally"));
}

void TestPackages::sdkPackageHoldsHeadersLibrariesAndConfigs() {
  for (const char* f :
       {"/usr/include/tally/client.h", "/usr/include/tally/common/status.h",
        "/usr/include/tally/common/series_key.h", "/usr/include/tally/common/time_bucket.h"})
    QVERIFY2(QFileInfo::exists(root_ + f), f);
  const QString lib = libdir();
  QVERIFY2(!lib.isEmpty(), "no libtally.a under usr/lib");
  QVERIFY(QFileInfo(lib + "/libtally.so").isSymLink());
  QVERIFY(QFileInfo::exists(lib + "/libtally.so.1"));  // SOVERSION 1 (sdk/CMakeLists.txt)
  QVERIFY(!QFileInfo::exists(lib + "/libtally.so.0"));
  QVERIFY(QFileInfo::exists(lib + "/libtally.so." TALLY_VERSION));
  for (const char* f : {"/cmake/Tally/TallyConfig.cmake", "/cmake/Tally/TallyConfigVersion.cmake",
                        "/cmake/Tally/TallyTargets.cmake", "/pkgconfig/tally.pc"})
    QVERIFY2(QFileInfo::exists(lib + f), f);
  // Every header the public one includes is in the package (the build below proves it too).
  QDirIterator headers(root_ + "/usr/include/tally", {"*.h"}, QDir::Files,
                       QDirIterator::Subdirectories);
  while (headers.hasNext()) {
    QFile h(headers.next());
    QVERIFY(h.open(QIODevice::ReadOnly));
    const QString text = h.readAll();
    QRegularExpression inc(R"re(#include "([^"]+)")re");
    for (auto it = inc.globalMatch(text); it.hasNext();) {
      const QString included = it.next().captured(1);
      QVERIFY2(QFileInfo::exists(root_ + "/usr/include/" + included),
               qPrintable(h.fileName() + " includes " + included));
    }
  }
  // The static library is self-contained: the SDK and tally_common (e.g. the wire schema).
  Run symbols = run("nm", {"-C", "--defined-only", lib + "/libtally.a"});
  RUN_OK(symbols);
  QVERIFY(symbols.out.contains("tally::Client::Client"));
  QVERIFY(symbols.out.contains("tally::wire::Batch"));
  QFile pc(lib + "/pkgconfig/tally.pc");
  QVERIFY(pc.open(QIODevice::ReadOnly));
  QVERIFY(QString(pc.readAll()).contains("prefix=/usr\n"));
  const QString depends = field("libtally-dev", "Depends");
  for (const char* dep : {"libprotobuf-dev", "libzmq3-dev", "libxxhash-dev", "libzmq5"})
    QVERIFY2(depends.contains(dep), qPrintable("Depends: " + depends));
}

void TestPackages::serviceBuildsWithCMakeAndCountsIntoThePackagedCollector() {
  if (kSanitized) QSKIP(kSanitizedNote);
  const QString src = tmp_.path() + "/service", build = tmp_.path() + "/service-build";
  QVERIFY(QDir().mkpath(src));
  QVERIFY(write_file(src + "/main.cpp", kServiceMain));
  QVERIFY(write_file(src + "/CMakeLists.txt", kServiceCMake));
  QStringList configure = {"-S",
                           src,
                           "-B",
                           build,
                           "-DCMAKE_PREFIX_PATH=" + root_ + "/usr",
                           "-DCMAKE_CXX_COMPILER=" TALLY_CXX,
                           "-DCMAKE_BUILD_TYPE=Release"};
  if (!QStandardPaths::findExecutable("ninja").isEmpty()) configure += {"-G", "Ninja"};
  RUN_OK(run(TALLY_CMAKE, configure));
  RUN_OK(run(TALLY_CMAKE, {"--build", build, "-j", "2"}));
  // The shared one finds the unpacked libtally.so through the rpath CMake set.
  Run ldd = run("ldd", {build + "/service_shared"});
  QVERIFY2(ldd.out.contains(root_), qPrintable(ldd.out));
  QVERIFY(!run("ldd", {build + "/service_static"}).out.contains("libtally"));

  CollectorProcess c;
  QVERIFY(start_packaged_collector(c));
  const int64_t from = tally::SystemClock::instance().now_s();
  for (const char* exe : {"service_shared", "service_static"}) {
    Run r = run(build + "/" + exe, {QString::fromStdString(c.ingest()), exe}, {}, {}, 60000);
    RUN_OK(r);
    QVERIFY2(r.out.contains("delivered=1"), qPrintable(r.out));
  }
  QVERIFY(eventually([&] {
    return counted(c, "service_shared", from) == 1000 && counted(c, "service_static", from) == 1000;
  }));
  QCOMPARE(c.stop(), 0);
}

void TestPackages::serviceBuildsWithPkgConfig() {
  if (kSanitized) QSKIP(kSanitizedNote);
  if (QStandardPaths::findExecutable("pkg-config").isEmpty()) QSKIP("pkg-config not installed");
  const QString lib = libdir();
  const QString src = tmp_.path() + "/service/main.cpp";
  if (!QFileInfo::exists(src)) QVERIFY(write_file(src, kServiceMain));
  // The .pc says prefix=/usr, as installed; the sysroot points it into the unpacked root.
  const QStringList env = {"PKG_CONFIG_PATH=" + lib + "/pkgconfig",
                           "PKG_CONFIG_SYSROOT_DIR=" + root_, "PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1",
                           "PKG_CONFIG_ALLOW_SYSTEM_LIBS=1"};
  Run version = run("pkg-config", {"--modversion", "tally"}, {}, env);
  RUN_OK(version);
  QCOMPARE(version.out.trimmed(), QString(TALLY_VERSION));
  Run flags = run("pkg-config", {"--cflags", "--libs", "tally"}, {}, env);
  RUN_OK(flags);
  QVERIFY2(flags.out.contains("-I" + root_ + "/usr/include") && flags.out.contains("-ltally"),
           qPrintable(flags.out));
  const QString exe = tmp_.path() + "/service_pc";
  QStringList args = {"-std=c++20", "-O1", src, "-o", exe};
  args += flags.out.trimmed().split(' ', Qt::SkipEmptyParts);
  RUN_OK(run(TALLY_CXX, args));

  CollectorProcess c;
  QVERIFY(start_packaged_collector(c));
  const int64_t from = tally::SystemClock::instance().now_s();
  Run r = run(exe, {QString::fromStdString(c.ingest()), "pkg_config"}, {},
              {"LD_LIBRARY_PATH=" + lib}, 60000);
  RUN_OK(r);
  QVERIFY(eventually([&] { return counted(c, "pkg_config", from) == 1000; }));
  QCOMPARE(c.stop(), 0);
}

QTEST_GUILESS_MAIN(TestPackages)
#include "tst_packages.moc"
