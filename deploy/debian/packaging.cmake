# Debian packages (cpack -G DEB in a normal build folder):
#   taskhost      the host: /usr/bin/taskhost, its systemd unit, the settings
#                 /etc/taskhost/taskhost.conf, the state folder
#                 /var/lib/taskhost (plugins/ inside); postinst creates the
#                 taskhost system user that owns it. Dependencies: dpkg-shlibdeps.
#   taskhost-dev  the plugin SDK (sdk/CMakeLists.txt, component "sdk")
# tests/sdk/debian_packages.sh builds and checks both.

include(GNUInstallDirs)
set(debian ${CMAKE_CURRENT_LIST_DIR})
install(TARGETS taskhost RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT host)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/nginx/taskhost.conf RENAME nginx-taskhost.conf
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT host)
# System paths outside the prefix: installed by the package, or by asking for
# the component (cmake --install --component host), never by a plain install
# into a scratch prefix.
install(FILES ${debian}/taskhost.service DESTINATION /lib/systemd/system COMPONENT host EXCLUDE_FROM_ALL)
install(FILES ${debian}/taskhost.conf DESTINATION /etc/taskhost COMPONENT host EXCLUDE_FROM_ALL)
install(DIRECTORY DESTINATION /var/lib/taskhost/plugins COMPONENT host EXCLUDE_FROM_ALL)

set(CPACK_PACKAGE_NAME taskhost)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "taskhost developers <taskhost@example.org>")
set(CPACK_GENERATOR DEB)
set(CPACK_COMPONENTS_ALL host sdk)
set(CPACK_DEB_COMPONENT_INSTALL ON)
# The package holds /etc and /var paths as well as /usr ones.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_HOST_PACKAGE_NAME taskhost)
set(CPACK_DEBIAN_HOST_PACKAGE_SECTION net)
set(CPACK_DEBIAN_HOST_PACKAGE_DEPENDS "adduser, tzdata")
set(CPACK_DEBIAN_HOST_PACKAGE_SUGGESTS "taskhost-dev, nginx")
# First line: the package's summary (no CPACK_PACKAGE_DESCRIPTION_SUMMARY, which
# cpack would put before each component's).
set(CPACK_COMPONENT_HOST_DESCRIPTION "HTTP task service for compiled plugins
taskhost serves the tasks of plugin .so files over HTTP as durable jobs kept in
SQLite, and reloads changed plugins on SIGHUP (systemctl reload taskhost).")
set(CPACK_DEBIAN_HOST_PACKAGE_CONTROL_EXTRA ${debian}/postinst ${debian}/prerm ${debian}/postrm ${debian}/conffiles)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME taskhost-dev)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SDK_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_SDK_PACKAGE_SHLIBDEPS OFF)
set(CPACK_DEBIAN_SDK_PACKAGE_DEPENDS "nlohmann-json3-dev (>= 3)")
set(CPACK_DEBIAN_SDK_PACKAGE_SUGGESTS "libsqlite3-dev, pkg-config")
set(CPACK_COMPONENT_SDK_DESCRIPTION "plugin SDK for taskhost
Headers of the C++20 plugin SDK and of the C plugin ABI, the CMake package
(find_package(taskhost), taskhost_add_plugin()) and taskhost.pc.")

include(CPack)
