# Warnings as errors on our own code only; third-party headers come in as SYSTEM.
# The sanitizer build keeps the warnings but not -Werror: GCC's sanitizer
# instrumentation raises false positives (maybe-uninitialized,
# stringop-overflow) that the normal build, which does use -Werror, does not.
function(kpihub_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-error=deprecated-declarations)
  if(NOT KPIHUB_SANITIZE)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Collect the subdirectories of DIR that carry a CMakeLists.txt and add them, so
# each area of the code can be grown without touching a shared list.
function(kpihub_add_subdirectories dir)
  file(GLOB _children LIST_DIRECTORIES true ${dir}/*)
  list(SORT _children)
  foreach(_child IN LISTS _children)
    if(IS_DIRECTORY ${_child} AND EXISTS ${_child}/CMakeLists.txt)
      add_subdirectory(${_child})
    endif()
  endforeach()
endfunction()
