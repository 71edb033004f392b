# The installed SDK (component sdk = Debian package libtally-dev, see installer/package.cmake):
#   include/tally/client.h and the common headers it includes (no generated protobuf header)
#   libtally.so.0          the shared library (tally_common inside)
#   libtally.a             the SDK and tally_common in one archive; a static link adds only
#                          system libraries (protobuf, zmq, xxhash)
#   lib/cmake/Tally/       find_package(Tally) -> Tally::tally, Tally::tally_static
#   lib/pkgconfig/tally.pc pkg-config --cflags --libs tally (add --static for libtally.a)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Objects of the SDK and of tally_common, archived once more under the installed name.
add_library(tally_static_install STATIC $<TARGET_OBJECTS:tally_sdk_objects> $<TARGET_OBJECTS:tally_common>)
set_target_properties(tally_static_install PROPERTIES
  OUTPUT_NAME tally EXPORT_NAME tally_static AUTOMOC OFF
  ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/install-archive)
target_link_libraries(tally_static_install INTERFACE
  Threads::Threads $<INSTALL_INTERFACE:protobuf> $<INSTALL_INTERFACE:zmq> $<INSTALL_INTERFACE:xxhash>)
target_compile_features(tally_static_install INTERFACE cxx_std_20)
target_compile_features(tally INTERFACE cxx_std_20)  # client.h uses std::span

install(TARGETS tally tally_static_install EXPORT TallyTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk NAMELINK_COMPONENT sdk
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT sdk
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/tally/client.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tally COMPONENT sdk)
# What client.h includes, and what those include; tst_packages builds a service against them.
install(FILES
  ${PROJECT_SOURCE_DIR}/common/include/tally/common/endpoints.h
  ${PROJECT_SOURCE_DIR}/common/include/tally/common/series_key.h
  ${PROJECT_SOURCE_DIR}/common/include/tally/common/status.h
  ${PROJECT_SOURCE_DIR}/common/include/tally/common/time_bucket.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tally/common COMPONENT sdk)

set(TALLY_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Tally)
install(EXPORT TallyTargets NAMESPACE Tally:: DESTINATION ${TALLY_CMAKE_DIR} COMPONENT sdk)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/TallyConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/TallyConfig.cmake INSTALL_DESTINATION ${TALLY_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/TallyConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)  # 0.x: a minor version may break
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/TallyConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/TallyConfigVersion.cmake
  DESTINATION ${TALLY_CMAKE_DIR} COMPONENT sdk)

# tally.pc is written at install time so its prefix is where the files go (/usr in the package).
install(CODE "
  set(prefix \"\${CMAKE_INSTALL_PREFIX}\")
  set(libdir \"${CMAKE_INSTALL_LIBDIR}\")
  set(includedir \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(version \"${PROJECT_VERSION}\")
  configure_file(\"${CMAKE_CURRENT_LIST_DIR}/tally.pc.in\"
                 \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/tally.pc\" @ONLY)
  message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/tally.pc\")
" COMPONENT sdk)
