# kpihub_add_plugin(<name> <source>...)
#
# Builds a kpihub plugin: a shared library that exports only
# `kpihub_plugin_entry`, linked against the SDK, written to
# KPIHUB_PLUGIN_OUTPUT_DIRECTORY when that is set (the hub's build does).
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
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
endfunction()
