# Builds h2o's libh2o-evloop target, and nothing else of its tree, with h2o's
# own flags. Run by the h2o_build step of cmake/BerthH2O.cmake:
#
#   cmake -DH2O_SOURCE_DIR=... -DH2O_BINARY_DIR=... -DH2O_C_COMPILER=... -P BerthH2OBuild.cmake
#
# Idempotent and shared: the first run configures H2O_BINARY_DIR, later runs
# (from this or another berth build directory) only ask h2o's make, which
# finds nothing to do. A lock keeps two builds out of the same directory.
foreach(v H2O_SOURCE_DIR H2O_BINARY_DIR H2O_C_COMPILER)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "BerthH2OBuild.cmake: -D${v}=... is required")
  endif()
endforeach()

file(MAKE_DIRECTORY "${H2O_BINARY_DIR}")
file(LOCK "${H2O_BINARY_DIR}.lock" GUARD PROCESS TIMEOUT 3600 RESULT_VARIABLE lock_rc)
if(NOT lock_rc STREQUAL "0")
  message(FATAL_ERROR "h2o: cannot lock ${H2O_BINARY_DIR}.lock: ${lock_rc}")
endif()

cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)
if(NOT jobs OR jobs LESS 1)
  set(jobs 2)
endif()

# What berth needs of h2o is the HTTP/1 and HTTP/2 server library: no mruby,
# no optional compressors, no tracing, no io_uring, no optional ciphers.
# CFLAGS and LDFLAGS from the environment are berth's, not h2o's.
set(env ${CMAKE_COMMAND} -E env --unset=CFLAGS --unset=LDFLAGS --unset=CPPFLAGS --unset=MAKEFLAGS)
if(NOT EXISTS "${H2O_BINARY_DIR}/.berth-configured")
  message(STATUS "h2o: configuring ${H2O_SOURCE_DIR} in ${H2O_BINARY_DIR}")
  execute_process(
    COMMAND ${env} ${CMAKE_COMMAND} -S "${H2O_SOURCE_DIR}" -B "${H2O_BINARY_DIR}"
            -G "Unix Makefiles"
            -DCMAKE_C_COMPILER=${H2O_C_COMPILER}
            -DCMAKE_BUILD_TYPE=Release
            -DWITH_MRUBY=OFF -DWITH_BROTLI=OFF -DWITH_ZSTD=OFF -DWITH_DTRACE=OFF
            -DWITH_IO_URING=OFF -DWITH_FUSION=OFF -DWITH_AEGIS=OFF
            -DWITH_CCACHE=OFF
    OUTPUT_FILE "${H2O_BINARY_DIR}/berth-configure.log"
    ERROR_FILE "${H2O_BINARY_DIR}/berth-configure.log"
    RESULT_VARIABLE rc)
  if(NOT rc STREQUAL "0")
    file(READ "${H2O_BINARY_DIR}/berth-configure.log" log)
    message(FATAL_ERROR "h2o: configure failed (${rc}):\n${log}")
  endif()
  file(TOUCH "${H2O_BINARY_DIR}/.berth-configured")
endif()

if(NOT EXISTS "${H2O_BINARY_DIR}/libh2o-evloop.a")
  message(STATUS "h2o: building libh2o-evloop (${jobs} jobs; about a minute on 2 cores)")
endif()
string(TIMESTAMP t0 "%s")
execute_process(
  COMMAND ${env} ${CMAKE_COMMAND} --build "${H2O_BINARY_DIR}" --target libh2o-evloop --parallel ${jobs}
  OUTPUT_FILE "${H2O_BINARY_DIR}/berth-build.log"
  ERROR_FILE "${H2O_BINARY_DIR}/berth-build.log"
  RESULT_VARIABLE rc)
string(TIMESTAMP t1 "%s")
if(NOT rc STREQUAL "0")
  file(READ "${H2O_BINARY_DIR}/berth-build.log" log)
  message(FATAL_ERROR "h2o: building libh2o-evloop failed (${rc}):\n${log}")
endif()
math(EXPR secs "${t1} - ${t0}")
if(secs GREATER 5)
  message(STATUS "h2o: libh2o-evloop built in ${secs} s")
endif()
