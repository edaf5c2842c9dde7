# ctest Layers.UpwardIncludeIsAnError: check_layers.cmake on tests/fixtures/layers, a tree that
# breaks the rule five ways, must fail and name each. Run: cmake -DSOURCE=<source dir> -P this file.
execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${SOURCE}/tests/fixtures/layers -P ${SOURCE}/cmake/check_layers.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(APPEND out "${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "check_layers.cmake passed a tree with includes against the direction:\n${out}")
endif()
foreach(expected
    "workdir.cpp: #include \"apricot/method/arms.hpp\"  (io may include: core, data, models, io)"
    "workdir.cpp: #include <apricot/method/adjustment.hpp>  (io may include"
    "workdir.cpp: #include \"../method/x.hpp\"  (a relative include out of its folder"
    "helper.h: #include \"apricot/train/train.hpp\"  (io may include"
    "src/util: not a layer folder")
  string(FIND "${out}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "check_layers.cmake did not name: ${expected}\nIt said:\n${out}")
  endif()
endforeach()
string(FIND "${out}" "errors.hpp" allowed_named)
if(NOT allowed_named EQUAL -1)
  message(FATAL_ERROR "check_layers.cmake named an allowed include (core/errors.hpp):\n${out}")
endif()
message(STATUS "check_layers.cmake refused the fixture tree and named all five violations")
