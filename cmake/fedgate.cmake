# Helpers shared by the folder CMakeLists. Sources are globbed per folder so that adding a module is
# adding its .c/.h pair; the folder's CMakeLists states only what the folder may link (DESIGN.md §3).

# fedgate_folder_library(NAME [EXCLUDE file.c ...]): a static library from every .c in this folder.
function(fedgate_folder_library name)
  cmake_parse_arguments(L "" "" "EXCLUDE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
  foreach(x ${L_EXCLUDE})
    list(REMOVE_ITEM srcs ${CMAKE_CURRENT_SOURCE_DIR}/${x})
  endforeach()
  add_library(${name} STATIC ${srcs})
endfunction()

# fedgate_unit_test(NAME SOURCES a.c ... LIBS lib ...): a cmocka test run by CTest, label "unit".
# Exit code 77 means skipped (a kernel or tool the test needs is missing).
function(fedgate_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}" SKIP_RETURN_CODE 77
                       ENVIRONMENT "FEDGATE_SOURCE_DIR=${CMAKE_SOURCE_DIR};FEDGATE_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()

# fedgate_fuzz_target(NAME SOURCES harness.c LIBS ...): with clang and FEDGATE_FUZZ a libFuzzer
# binary; always a replay test that runs the committed corpus tests/fuzz/NAME.in/ through the harness.
function(fedgate_fuzz_target name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name}_replay ${F_SOURCES} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_link_libraries(${name}_replay PRIVATE ${F_LIBS})
  add_test(NAME ${name}_corpus COMMAND ${name}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/${name}.in)
  set_tests_properties(${name}_corpus PROPERTIES LABELS "unit;fuzz")
  if(FEDGATE_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
  endif()
endfunction()

# Add every immediate subfolder of the current folder that has a CMakeLists.txt.
macro(fedgate_add_subfolders)
  file(GLOB _children LIST_DIRECTORIES true CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*)
  foreach(_c ${_children})
    if(IS_DIRECTORY ${_c} AND EXISTS ${_c}/CMakeLists.txt)
      add_subdirectory(${_c})
    endif()
  endforeach()
endmacro()
