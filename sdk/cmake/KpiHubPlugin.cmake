# kpihub_add_plugin(<name> <source>...)
#
# Builds a kpihub plugin: a shared library that exports only
# `kpihub_plugin_entry`, linked against the SDK, written to
# KPIHUB_PLUGIN_OUTPUT_DIRECTORY when that is set (the hub's build does).
# A plugin that includes <kpihub/xml.hpp> also links KpiHub::xml.

# Hidden visibility alone left 40-140 symbols exported (Boost and standard library templates
# and typeinfo the headers mark as default visibility); the version script keeps one.
# (A cache entry: kpihub_add_plugin may be called from any folder of the project.)
set(_KPIHUB_PLUGIN_VERSION_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/kpihub-plugin.map CACHE INTERNAL "")

function(kpihub_add_plugin name)
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE KpiHub::sdk)
  target_compile_features(${name} PRIVATE cxx_std_20)
  set_target_properties(${name} PROPERTIES
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(KPIHUB_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${KPIHUB_PLUGIN_OUTPUT_DIRECTORY})
  endif()
  # Everything a plugin needs is resolved at load time (the host loads with
  # RTLD_NOW); an undefined symbol is a link error here, not a crash there.
  target_link_options(${name} PRIVATE -Wl,--no-undefined
    -Wl,--version-script=${_KPIHUB_PLUGIN_VERSION_SCRIPT})
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${_KPIHUB_PLUGIN_VERSION_SCRIPT})
endfunction()
