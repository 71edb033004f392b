# Debian packages: `make package` runs `cpack -G DEB` in the build directory and writes one .deb
# per install component (tests/packaging/tst_packages.cpp checks them):
#
#   tally-collector  component collector: tally-collector and the tally CLI, the systemd unit
#                    (tally user, data in /var/lib/tally, hardened), /etc/tally/collector.toml
#                    (a conffile), maintainer scripts in installer/debian/tally-collector/
#   tally-dashboard  component dashboard: tally-dashboard, .desktop file, icon, dashboards
#   libtally-dev     component sdk: headers, libtally.so + libtally.a, find_package(Tally),
#                    tally.pc (install rules in sdk/install.cmake)
#
# Depends come from dpkg-shlibdeps (package dpkg-dev) plus what no ELF file says. A description
# is its summary line, then the long text (CPack indents it).

# The collector's files beyond its binaries (those are installed by collector/ and sdk/cli/).
install(FILES ${CMAKE_CURRENT_LIST_DIR}/tally-collector.service DESTINATION lib/systemd/system COMPONENT collector)
# 0640: the config may hold tokens and key paths; postinst makes it root:tally (dpkg-statoverride).
install(FILES ${CMAKE_CURRENT_LIST_DIR}/tally-collector.toml DESTINATION /etc/tally RENAME collector.toml
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ COMPONENT collector)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/tally-collector COMPONENT collector)

set(CPACK_PACKAGE_NAME tally)
set(CPACK_PACKAGE_VENDOR "Tally")
set(CPACK_PACKAGE_CONTACT "Tally maintainers <tally@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  # the prefix CPACK_SET_DESTDIR installs under
# Install into the staging root with DESTDIR, so /etc/tally and an install-time prefix (tally.pc)
# come out as they will be on the target machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL collector sdk)
if(TALLY_BUILD_APP)
  list(APPEND CPACK_COMPONENTS_ALL dashboard)
endif()

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
find_program(TALLY_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(TALLY_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  message(STATUS "dpkg-shlibdeps not found (package dpkg-dev): .deb Depends will list only what is set by hand")
endif()
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)

set(CPACK_DEBIAN_COLLECTOR_PACKAGE_NAME tally-collector)
set(CPACK_DEBIAN_COLLECTOR_PACKAGE_SECTION net)
set(CPACK_DEBIAN_COLLECTOR_DESCRIPTION "Tally metrics collector
Receives counters, gauges and distributions from Tally SDKs (ZeroMQ) and StatsD/DogStatsD
clients (UDP), aggregates them into 1 s / 10 s / 1 m / 1 h buckets, keeps them crash-safe in
sharded SQLite files, serves an HTTP/JSON and a Prometheus-compatible query API and a live
stream, and can forward to a Prometheus remote-write endpoint. Includes the tally command-line
tool. Runs as the systemd service tally-collector (user tally, data in /var/lib/tally).")
# useradd/adduser, install: passwd and coreutils are essential; deb-systemd-helper is used when present.
set(CPACK_DEBIAN_COLLECTOR_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/debian/tally-collector/postinst
  ${CMAKE_CURRENT_LIST_DIR}/debian/tally-collector/prerm
  ${CMAKE_CURRENT_LIST_DIR}/debian/tally-collector/postrm
  ${CMAKE_CURRENT_LIST_DIR}/debian/tally-collector/conffiles)
set(CPACK_DEBIAN_COLLECTOR_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DASHBOARD_PACKAGE_NAME tally-dashboard)
set(CPACK_DEBIAN_DASHBOARD_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_DASHBOARD_DESCRIPTION "Tally dashboard
A Qt desktop dashboard for a Tally collector: metric browser, panels of live time-series
charts and histograms filtered and grouped by tags, zoom and pan, saved dashboards, and CSV and
PNG export of any panel (also headless from the command line).")
# Not an ELF dependency: Qt's platform plugins (xcb, offscreen). The SVG icon engine comes with
# libqt6svg6, which shlibdeps finds. libqt6keychain1 (secret header values in the OS keychain) is
# an ELF dependency too; named here as well so that the package says so without dpkg-shlibdeps.
set(CPACK_DEBIAN_DASHBOARD_PACKAGE_DEPENDS "qt6-qpa-plugins, libqt6keychain1")

set(CPACK_DEBIAN_SDK_PACKAGE_NAME libtally-dev)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SDK_DESCRIPTION "Tally SDK: C++ client library and headers
tally::Client counts events and observes values from a C++20 service (a few nanoseconds per
call, never blocking, bounded memory) and ships them to a tally-collector. Shared and static
library, headers, a CMake package (find_package(Tally): Tally::tally, Tally::tally_static) and
a pkg-config file (tally).")
# libtally.a needs the development libraries of what it links (the .so is covered by shlibdeps).
set(CPACK_DEBIAN_SDK_PACKAGE_DEPENDS "libprotobuf-dev, libzmq3-dev, libxxhash-dev")

include(CPack)
