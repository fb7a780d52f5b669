# taskhost_add_plugin(<name> SOURCES <files...> [OUTPUT_DIRECTORY <dir>])
#
# Builds <name>.so as a taskhost plugin: a MODULE library with no "lib"
# prefix, hidden visibility (only the entry symbol is exported) and
# -fno-gnu-unique, so two versions of one plugin loaded side by side during a
# hot reload never share symbols and can be unloaded.
function(taskhost_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY ${TASKHOST_PLUGIN_DIR})
  endif()
  set(version_script ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/taskhost_plugin.map)
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE taskhost::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY}
    LINK_DEPENDS ${version_script})
  # C++ only: gcc warns about this flag on C sources (plugins may be plain C).
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-fno-gnu-unique>)
  # Unresolved symbols are a build error, not a load-time surprise; the
  # version script keeps std template instantiations out of the dynamic table.
  target_link_options(${name} PRIVATE -Wl,--no-undefined
    -Wl,--version-script=${version_script})
endfunction()
