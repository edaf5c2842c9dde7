# The layering rule, checked on every build (and by ctest): a file under src/<layer>/ or
# include/apricot/<layer>/ may include "apricot/<other>/..." only for the layers listed below for
# its own. Run alone: cmake -DROOT=<source dir> -P cmake/check_layers.cmake (exit 1 on a violation,
# naming the file, the line and the allowed layers). docs/ARCHITECTURE.md draws the same table.
cmake_minimum_required(VERSION 3.18)
if(NOT ROOT)
  message(FATAL_ERROR "check_layers.cmake: set -DROOT=<source dir>")
endif()

# layer -> the layers it may include (itself included)
set(APRICOT_ALLOWED_core     core)
set(APRICOT_ALLOWED_data     core data)
set(APRICOT_ALLOWED_models   core data models)
set(APRICOT_ALLOWED_io       core data models io)
set(APRICOT_ALLOWED_train    core data models io train)
set(APRICOT_ALLOWED_method   core data models io train method)
set(APRICOT_ALLOWED_report   core data models io train method report)
set(APRICOT_ALLOWED_pipeline core data models io train method pipeline)
set(APRICOT_ALLOWED_cli      core data models io train method report pipeline cli)
set(APRICOT_LAYERS core data models io train method report pipeline cli)

set(violations "")
set(checked 0)
foreach(layer IN LISTS APRICOT_LAYERS)
  file(GLOB_RECURSE files "${ROOT}/src/${layer}/*.cpp" "${ROOT}/src/${layer}/*.hpp"
       "${ROOT}/include/apricot/${layer}/*.hpp")
  foreach(f IN LISTS files)
    math(EXPR checked "${checked} + 1")
    file(STRINGS "${f}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"apricot/")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"apricot/([a-z_]+)/.*$" "\\1" target "${line}")
      if(target STREQUAL line)
        string(APPEND violations "\n  ${f}: ${line}  (headers live in include/apricot/<layer>/)")
      elseif(NOT target IN_LIST APRICOT_ALLOWED_${layer})
        string(REPLACE ";" ", " allowed "${APRICOT_ALLOWED_${layer}}")
        string(APPEND violations "\n  ${f}: ${line}  (${layer} may include: ${allowed})")
      endif()
    endforeach()
  endforeach()
endforeach()

# Every source file must sit in a layer.
file(GLOB stray "${ROOT}/src/*.cpp" "${ROOT}/src/*.hpp" "${ROOT}/include/apricot/*.hpp")
foreach(f IN LISTS stray)
  string(APPEND violations "\n  ${f}: not in a layer folder (${APRICOT_LAYERS})")
endforeach()

if(violations)
  message(FATAL_ERROR "apricot layering: an include against the direction "
          "core -> data -> models -> io -> train -> method -> {report, pipeline} -> cli:${violations}")
endif()
if(checked EQUAL 0)
  message(FATAL_ERROR "apricot layering: no source files under ${ROOT}/src")
endif()
