# taskhost_add_plugin(<name> SOURCES <files...> [OUTPUT_DIRECTORY <dir>])
#
# Builds <name>.so as a taskhost plugin: a MODULE library with no "lib"
# prefix, hidden visibility (only the entry symbol is exported) and
# -fno-gnu-unique, so two versions of one plugin loaded side by side during a
# hot reload never share symbols and can be unloaded. C++ sources get C++20;
# plain C plugins (abi.h only) work too.
#
# The .so lands in OUTPUT_DIRECTORY, else ${TASKHOST_PLUGIN_OUTPUT_DIRECTORY}
# if set, else the current build folder.
#
# Works after find_package(taskhost) and from a plain include() of this file,
# in the source tree (sdk/cmake/) or installed (share/cmake/taskhost/): without
# a taskhost::sdk target, it defines one from the headers next to this file.

if(NOT TARGET taskhost::sdk)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../include/taskhost/abi.h)
    get_filename_component(_taskhost_include ${CMAKE_CURRENT_LIST_DIR}/../include ABSOLUTE)
  elseif(EXISTS ${CMAKE_CURRENT_LIST_DIR}/../../../include/taskhost/abi.h)
    get_filename_component(_taskhost_include ${CMAKE_CURRENT_LIST_DIR}/../../../include ABSOLUTE)
  else()
    message(FATAL_ERROR "TaskhostPlugin.cmake: no include/taskhost/abi.h near ${CMAKE_CURRENT_LIST_DIR}")
  endif()
  find_package(nlohmann_json 3 REQUIRED)
  add_library(taskhost::sdk INTERFACE IMPORTED)
  set_target_properties(taskhost::sdk PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${_taskhost_include}
    INTERFACE_LINK_LIBRARIES "nlohmann_json::nlohmann_json;${CMAKE_DL_LIBS}")
  unset(_taskhost_include)
endif()

function(taskhost_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "taskhost_add_plugin(${name}): no SOURCES")
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    if(TASKHOST_PLUGIN_OUTPUT_DIRECTORY)
      set(ARG_OUTPUT_DIRECTORY ${TASKHOST_PLUGIN_OUTPUT_DIRECTORY})
    else()
      set(ARG_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    endif()
  endif()
  set(version_script ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/taskhost_plugin.map)
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE taskhost::sdk)
  get_property(languages GLOBAL PROPERTY ENABLED_LANGUAGES)
  if(CXX IN_LIST languages)
    target_compile_features(${name} PRIVATE cxx_std_20)
  endif()
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY}
    LINK_DEPENDS ${version_script})
  # C++ only: gcc warns about this flag on C sources (plugins may be plain C).
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-fno-gnu-unique>)
  # Unresolved symbols are a build error, not a load-time surprise; the
  # version script keeps std template instantiations out of the dynamic table.
  # Not in taskhost's own clang sanitizer builds: clang links the sanitizer
  # runtime into the executable only, where the plugin finds it when loaded.
  set(no_undefined -Wl,--no-undefined)
  if(TASKHOST_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    set(no_undefined "")
  endif()
  target_link_options(${name} PRIVATE ${no_undefined} -Wl,--version-script=${version_script})
endfunction()
