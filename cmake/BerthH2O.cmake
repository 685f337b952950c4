# Which libh2o berth is built on.
#
# berth wants current h2o (master, pinned below): it is what h2o's users run,
# it carries the security fixes since 2018, and it can stream request bodies.
# Debian 12 ships only 2.2.5, so the pinned commit is built from source as a
# static library when the system has no h2o >= 2.3, and Debian's 2.2.5 stays
# as an offline fallback.
#
# BERTH_H2O=auto (default) takes the first of:
#   1. a system libh2o-evloop (pkg-config) whose headers say 2.3 or later;
#   2. the pinned commit from BERTH_H2O_SOURCE (CMake or environment
#      variable): the upstream tarball (its sha256 is checked) or an
#      extracted tree; a relative path is taken from the source root;
#   3. the pinned commit fetched with git from BERTH_H2O_GIT_URL, given up
#      after BERTH_H2O_FETCH_TIMEOUT seconds without an answer (offline
#      machines fail here quickly and go on);
#   4. the system libh2o-evloop whatever its version (Debian's 2.2.5), with a
#      warning saying what that build lacks.
# BERTH_H2O=system takes only 1/4 (forces the 2.2.5 fallback where Debian's
# is installed); BERTH_H2O=bundled takes only 2/3 and fails without them.
#
# Steps 2 and 3 build h2o's own libh2o-evloop target (nothing else of its
# tree) with h2o's own flags, never berth's warnings or sanitizers, under
# BERTH_H2O_BUILD_DIR, keyed by commit and compiler, so that several berth
# build directories given the same BERTH_H2O_BUILD_DIR share one h2o build.
#
# Defines the INTERFACE target berth_h2o (headers, the library and what it
# links, H2O_USE_LIBUV=0, and BERTH_H2O_STREAMING, BERTH_H2O_ORIGIN for the
# code) and the variables BERTH_H2O_VERSION, BERTH_H2O_STREAMING and
# BERTH_H2O_ORIGIN.

set(BERTH_H2O_COMMIT edd7a120bfc4af11ac0cbebce2a43cc1f93f9af1)
set(BERTH_H2O_TARBALL_SHA256 8c5d191699aef575891403c6ca0f33b4e36dc2aefeb1e86b15626c66f5cc0300)
# Bump when the way h2o is configured below changes: a new key, a new build.
set(BERTH__H2O_RECIPE 1)

set(BERTH_H2O auto CACHE STRING "Which h2o: auto, system (pkg-config libh2o-evloop, e.g. Debian's 2.2.5) or bundled (the pinned commit, from BERTH_H2O_SOURCE or git)")
set_property(CACHE BERTH_H2O PROPERTY STRINGS auto system bundled)
set(BERTH_H2O_SOURCE "" CACHE STRING "The pinned h2o commit as its upstream .tar.gz or an extracted tree (the environment variable BERTH_H2O_SOURCE, when set, wins)")
set(BERTH_H2O_BUILD_DIR "" CACHE STRING "Where h2o is built from source (default <build>/h2o; the environment variable, when set, wins); share it between build directories")
set(BERTH_H2O_GIT_URL "https://github.com/h2o/h2o.git" CACHE STRING "h2o's git repository, for fetching the pinned commit")
option(BERTH_H2O_FETCH "Fetch the pinned h2o commit with git when nothing else provides h2o >= 2.3" ON)
set(BERTH_H2O_FETCH_TIMEOUT 30 CACHE STRING "Seconds the reachability check of BERTH_H2O_GIT_URL may take")

string(TOLOWER "${BERTH_H2O}" BERTH__H2O_MODE)
if(NOT BERTH__H2O_MODE MATCHES "^(auto|system|bundled)$")
  message(FATAL_ERROR "BERTH_H2O must be auto, system or bundled, not '${BERTH_H2O}'")
endif()

# The environment variables, when set, win over and update the cache, so
# that a later configure run without them (make re-runs CMake by itself
# when a CMakeLists.txt changes) keeps the same h2o.
foreach(v BERTH_H2O_SOURCE BERTH_H2O_BUILD_DIR)
  if(NOT "$ENV{${v}}" STREQUAL "" AND NOT "$ENV{${v}}" STREQUAL "${${v}}")
    set(${v} "$ENV{${v}}" CACHE STRING "Set from the environment variable ${v}" FORCE)
  endif()
endforeach()
set(BERTH__H2O_SOURCE "${BERTH_H2O_SOURCE}")
set(BERTH__H2O_BUILD_DIR "${BERTH_H2O_BUILD_DIR}")
if(BERTH__H2O_BUILD_DIR STREQUAL "")
  set(BERTH__H2O_BUILD_DIR "${CMAKE_BINARY_DIR}/h2o")
endif()
get_filename_component(BERTH__H2O_BUILD_DIR "${BERTH__H2O_BUILD_DIR}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")

# Reads <dir>/h2o/version.h: the version string and major.minor.patch.
function(berth__h2o_read_version include_dir out_string out_number)
  set(h "${include_dir}/h2o/version.h")
  set(${out_string} "" PARENT_SCOPE)
  set(${out_number} "" PARENT_SCOPE)
  if(NOT EXISTS "${h}")
    return()
  endif()
  file(STRINGS "${h}" lines REGEX "^#define H2O_VERSION(_BASE|_MAJOR|_MINOR|_PATCH)? ")
  set(str "")
  foreach(l IN LISTS lines)
    if(l MATCHES "^#define H2O_VERSION(_BASE)? +\"([^\"]+)\"")
      set(str "${CMAKE_MATCH_2}")
    elseif(l MATCHES "^#define H2O_VERSION_(MAJOR|MINOR|PATCH) +([0-9]+)")
      set(v_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
    endif()
  endforeach()
  set(${out_string} "${str}" PARENT_SCOPE)
  if(DEFINED v_MAJOR AND DEFINED v_MINOR AND DEFINED v_PATCH)
    set(${out_number} "${v_MAJOR}.${v_MINOR}.${v_PATCH}" PARENT_SCOPE)
  endif()
endfunction()

# The libraries every libh2o-evloop needs besides itself; its .pc file names
# none of them.
find_package(Threads REQUIRED)
pkg_check_modules(BERTH_H2O_DEPS REQUIRED IMPORTED_TARGET libssl libcrypto zlib)

add_library(berth_h2o INTERFACE)
# libh2o's headers default to the libuv flavour: without this the evloop
# build's structs have the wrong size.
target_compile_definitions(berth_h2o INTERFACE H2O_USE_LIBUV=0)

# 1 and 4: pkg-config. Sets BERTH__H2O_SYS_FOUND, _VERSION (the string),
# _NUMBER (x.y.z).
set(BERTH__H2O_SYS_FOUND OFF)
if(NOT BERTH__H2O_MODE STREQUAL "bundled")
  pkg_check_modules(BERTH_H2O_SYS QUIET IMPORTED_TARGET libh2o-evloop)
  if(BERTH_H2O_SYS_FOUND)
    pkg_get_variable(berth__pc_includedir libh2o-evloop includedir)
    foreach(dir IN LISTS BERTH_H2O_SYS_INCLUDE_DIRS berth__pc_includedir)
      berth__h2o_read_version("${dir}" BERTH__H2O_SYS_VERSION BERTH__H2O_SYS_NUMBER)
      if(BERTH__H2O_SYS_NUMBER)
        break()
      endif()
    endforeach()
    if(BERTH__H2O_SYS_NUMBER)
      set(BERTH__H2O_SYS_FOUND ON)
    else()
      message(STATUS "h2o: pkg-config finds libh2o-evloop ${BERTH_H2O_SYS_VERSION} but not its h2o/version.h; ignored")
    endif()
  endif()
endif()

function(berth__h2o_use_system)
  target_link_libraries(berth_h2o INTERFACE PkgConfig::BERTH_H2O_SYS PkgConfig::BERTH_H2O_DEPS Threads::Threads
    ${CMAKE_DL_LIBS} m)
  set(BERTH_H2O_VERSION "${BERTH__H2O_SYS_VERSION}" PARENT_SCOPE)
  set(BERTH__H2O_NUMBER "${BERTH__H2O_SYS_NUMBER}" PARENT_SCOPE)
  set(BERTH_H2O_ORIGIN "system libh2o-evloop" PARENT_SCOPE)
endfunction()

# 2: BERTH_H2O_SOURCE. Sets BERTH__H2O_SRC to the tree (or leaves it empty)
# and BERTH__H2O_KEY to the name of its build.
function(berth__h2o_from_source_setting)
  if(BERTH__H2O_SOURCE STREQUAL "")
    return()
  endif()
  get_filename_component(src "${BERTH__H2O_SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_SOURCE_DIR}")
  if(IS_DIRECTORY "${src}")
    if(NOT EXISTS "${src}/CMakeLists.txt" OR NOT EXISTS "${src}/include/h2o/version.h")
      message(FATAL_ERROR "BERTH_H2O_SOURCE=${src} is not an h2o source tree")
    endif()
    # A tree may hold local changes: its build is its own, by path.
    string(MD5 path_hash "${src}")
    string(SUBSTRING "${path_hash}" 0 12 path_hash)
    set(BERTH__H2O_SRC "${src}" PARENT_SCOPE)
    set(BERTH__H2O_KEY "tree-${path_hash}" PARENT_SCOPE)
    set(BERTH__H2O_SRC_DESC "the tree ${src}" PARENT_SCOPE)
    return()
  endif()
  if(NOT EXISTS "${src}")
    message(FATAL_ERROR "BERTH_H2O_SOURCE=${src} does not exist")
  endif()
  set(dest "${BERTH__H2O_BUILD_DIR}/${BERTH_H2O_COMMIT}")
  set(tree "${dest}/src/h2o-${BERTH_H2O_COMMIT}")
  # Checked on every run (7 MB: milliseconds), extracted once.
  file(SHA256 "${src}" sum)
  if(NOT sum STREQUAL BERTH_H2O_TARBALL_SHA256)
    message(FATAL_ERROR "BERTH_H2O_SOURCE=${src}: sha256 ${sum}, expected ${BERTH_H2O_TARBALL_SHA256} "
      "(h2o ${BERTH_H2O_COMMIT} as `git archive --prefix=h2o-${BERTH_H2O_COMMIT}/` makes it)")
  endif()
  if(NOT EXISTS "${dest}/src/.tarball-${BERTH_H2O_TARBALL_SHA256}")
    file(REMOVE_RECURSE "${dest}/src")
    file(ARCHIVE_EXTRACT INPUT "${src}" DESTINATION "${dest}/src")
    if(NOT EXISTS "${tree}/include/h2o/version.h")
      message(FATAL_ERROR "BERTH_H2O_SOURCE=${src}: no h2o-${BERTH_H2O_COMMIT}/ inside")
    endif()
    file(TOUCH "${dest}/src/.tarball-${BERTH_H2O_TARBALL_SHA256}")
  endif()
  set(BERTH__H2O_SRC "${tree}" PARENT_SCOPE)
  set(BERTH__H2O_KEY "${BERTH_H2O_COMMIT}" PARENT_SCOPE)
  set(BERTH__H2O_SRC_DESC "${src} (sha256 checked)" PARENT_SCOPE)
endfunction()

# Runs a git command with a deadline; prompts are off so that it never waits
# for a terminal.
function(berth__h2o_git timeout out_rc out_err)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=true
                          GIT_HTTP_LOW_SPEED_LIMIT=1000 GIT_HTTP_LOW_SPEED_TIME=${BERTH_H2O_FETCH_TIMEOUT}
                          "${GIT_EXECUTABLE}" ${ARGN}
    TIMEOUT ${timeout} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  string(STRIP "${err}" err)
  set(${out_rc} "${rc}" PARENT_SCOPE)
  set(${out_err} "${err}" PARENT_SCOPE)
endfunction()

# 3: git. Asks the remote first with a short deadline (an offline machine
# fails there), then fetches the one commit and exports it as upstream's
# tarball would hold it, without .git.
function(berth__h2o_from_git)
  if(NOT BERTH_H2O_FETCH)
    message(STATUS "h2o: BERTH_H2O_FETCH is OFF: not fetching ${BERTH_H2O_COMMIT}")
    return()
  endif()
  set(dest "${BERTH__H2O_BUILD_DIR}/${BERTH_H2O_COMMIT}")
  set(tree "${dest}/src/h2o-${BERTH_H2O_COMMIT}")
  if(NOT EXISTS "${dest}/src/.git-${BERTH_H2O_COMMIT}")
    find_package(Git QUIET)
    if(NOT GIT_FOUND)
      message(STATUS "h2o: git is not installed: not fetching ${BERTH_H2O_COMMIT}")
      return()
    endif()
    message(STATUS "h2o: asking ${BERTH_H2O_GIT_URL} for ${BERTH_H2O_COMMIT} (at most ${BERTH_H2O_FETCH_TIMEOUT} s)")
    string(TIMESTAMP t0 "%s")
    berth__h2o_git(${BERTH_H2O_FETCH_TIMEOUT} rc err ls-remote "${BERTH_H2O_GIT_URL}" HEAD)
    string(TIMESTAMP t1 "%s")
    math(EXPR secs "${t1} - ${t0}")
    if(NOT rc STREQUAL "0")
      string(REGEX REPLACE "\n.*" "" err "${err}")
      message(STATUS "h2o: ${BERTH_H2O_GIT_URL} unreachable after ${secs} s (${rc}; ${err}): not fetched")
      return()
    endif()
    set(gitdir "${dest}/git")
    file(REMOVE_RECURSE "${gitdir}" "${dest}/src")
    file(MAKE_DIRECTORY "${gitdir}" "${dest}/src")
    # The remote answered: a stall in the fetch itself is cut by git's
    # low-speed limit; the deadline is only a backstop.
    berth__h2o_git(60 rc err init -q --bare "${gitdir}")
    if(rc STREQUAL "0")
      berth__h2o_git(1800 rc err --git-dir=${gitdir} fetch -q --depth 1 "${BERTH_H2O_GIT_URL}" ${BERTH_H2O_COMMIT})
    endif()
    if(rc STREQUAL "0")
      berth__h2o_git(300 rc err --git-dir=${gitdir} archive --format=tar --prefix=h2o-${BERTH_H2O_COMMIT}/
        -o "${dest}/h2o.tar" ${BERTH_H2O_COMMIT})
    endif()
    if(NOT rc STREQUAL "0")
      message(WARNING "h2o: fetching ${BERTH_H2O_COMMIT} from ${BERTH_H2O_GIT_URL} failed (${rc}): ${err}")
      file(REMOVE_RECURSE "${gitdir}" "${dest}/src")
      return()
    endif()
    file(ARCHIVE_EXTRACT INPUT "${dest}/h2o.tar" DESTINATION "${dest}/src")
    file(REMOVE_RECURSE "${gitdir}" "${dest}/h2o.tar")
    file(TOUCH "${dest}/src/.git-${BERTH_H2O_COMMIT}")
  endif()
  set(BERTH__H2O_SRC "${tree}" PARENT_SCOPE)
  set(BERTH__H2O_KEY "${BERTH_H2O_COMMIT}" PARENT_SCOPE)
  set(BERTH__H2O_SRC_DESC "${BERTH_H2O_GIT_URL} at ${BERTH_H2O_COMMIT}" PARENT_SCOPE)
endfunction()

# Builds libh2o-evloop from BERTH__H2O_SRC at build time, into a directory
# keyed by source, recipe and compiler, and points berth_h2o at it.
function(berth__h2o_use_source)
  berth__h2o_read_version("${BERTH__H2O_SRC}/include" version number)
  if(NOT number OR number VERSION_LESS 2.3)
    message(FATAL_ERROR "h2o from ${BERTH__H2O_SRC_DESC} is ${version}, not 2.3 or later")
  endif()
  set(key "${BERTH__H2O_KEY}-r${BERTH__H2O_RECIPE}-${CMAKE_C_COMPILER_ID}-${CMAKE_C_COMPILER_VERSION}")
  set(bin "${BERTH__H2O_BUILD_DIR}/build/${key}")
  set(lib "${bin}/libh2o-evloop.a")
  include(ExternalProject)
  # Every step is berth's own idempotent script (it configures once, then
  # lets h2o's make decide), so that build directories sharing `bin` never
  # redo each other's work, and it holds a lock on `bin` while it runs.
  ExternalProject_Add(h2o_build
    SOURCE_DIR "${BERTH__H2O_SRC}"
    BINARY_DIR "${bin}"
    PREFIX "${CMAKE_BINARY_DIR}/h2o-ep"
    DOWNLOAD_COMMAND ""
    UPDATE_COMMAND ""
    CONFIGURE_COMMAND ""
    BUILD_COMMAND ${CMAKE_COMMAND} -DH2O_SOURCE_DIR=${BERTH__H2O_SRC} -DH2O_BINARY_DIR=${bin}
                  -DH2O_C_COMPILER=${CMAKE_C_COMPILER} -P ${CMAKE_CURRENT_LIST_DIR}/BerthH2OBuild.cmake
    BUILD_ALWAYS ON
    INSTALL_COMMAND ""
    BUILD_BYPRODUCTS "${lib}"
    USES_TERMINAL_BUILD ON)
  add_library(berth_h2o_lib STATIC IMPORTED GLOBAL)
  set_target_properties(berth_h2o_lib PROPERTIES IMPORTED_LOCATION "${lib}")
  add_dependencies(berth_h2o_lib h2o_build)
  # SYSTEM: berth's warnings are for berth's code, not h2o's headers.
  target_include_directories(berth_h2o SYSTEM INTERFACE "${BERTH__H2O_SRC}/include"
    "${BERTH__H2O_SRC}/deps/picotls/include" "${BERTH__H2O_SRC}/deps/quicly/include")
  target_link_libraries(berth_h2o INTERFACE berth_h2o_lib PkgConfig::BERTH_H2O_DEPS Threads::Threads ${CMAKE_DL_LIBS} m)
  if(BERTH__H2O_KEY STREQUAL BERTH_H2O_COMMIT)
    set(origin "h2o ${BERTH_H2O_COMMIT}")
  else()
    set(origin "${BERTH__H2O_SRC}")
  endif()
  set(BERTH_H2O_VERSION "${version}" PARENT_SCOPE)
  set(BERTH__H2O_NUMBER "${number}" PARENT_SCOPE)
  set(BERTH_H2O_ORIGIN "built from ${origin}" PARENT_SCOPE)
  message(STATUS "h2o: ${version} from ${BERTH__H2O_SRC_DESC}; libh2o-evloop built in ${bin}")
endfunction()

set(BERTH__H2O_SRC "")
if(BERTH__H2O_MODE STREQUAL "system")
  if(NOT BERTH__H2O_SYS_FOUND)
    message(FATAL_ERROR "BERTH_H2O=system: pkg-config finds no libh2o-evloop (Debian: apt-get install libh2o-evloop-dev)")
  endif()
  berth__h2o_use_system()
elseif(BERTH__H2O_MODE STREQUAL "auto" AND BERTH__H2O_SYS_FOUND AND NOT BERTH__H2O_SYS_NUMBER VERSION_LESS 2.3)
  message(STATUS "h2o: ${BERTH__H2O_SYS_VERSION} from the system (pkg-config libh2o-evloop)")
  berth__h2o_use_system()
else()
  berth__h2o_from_source_setting()
  if(BERTH__H2O_SRC STREQUAL "")
    berth__h2o_from_git()
  endif()
  if(NOT BERTH__H2O_SRC STREQUAL "")
    berth__h2o_use_source()
  elseif(BERTH__H2O_MODE STREQUAL "bundled")
    message(FATAL_ERROR "BERTH_H2O=bundled: no h2o source. Set BERTH_H2O_SOURCE to "
      "h2o-${BERTH_H2O_COMMIT}.tar.gz (sha256 ${BERTH_H2O_TARBALL_SHA256}) or an extracted tree, "
      "or give this machine access to ${BERTH_H2O_GIT_URL}.")
  elseif(BERTH__H2O_SYS_FOUND)
    berth__h2o_use_system()
  else()
    message(FATAL_ERROR "No h2o: no BERTH_H2O_SOURCE, ${BERTH_H2O_GIT_URL} unreachable, and pkg-config finds no "
      "libh2o-evloop. Set BERTH_H2O_SOURCE to h2o-${BERTH_H2O_COMMIT}.tar.gz, or install libh2o-evloop-dev "
      "(Debian's 2.2.5, with the limits the README names).")
  endif()
endif()

if(BERTH__H2O_NUMBER VERSION_LESS 2.3)
  set(BERTH_H2O_STREAMING 0)
  message(WARNING
    "berth is being built on libh2o ${BERTH_H2O_VERSION} (${BERTH_H2O_ORIGIN}), the offline fallback. "
    "This build cannot stream request bodies: each is buffered whole before berth sees it, "
    "so layers and chunks over http.maxchunksize fail and the bytes of a body cut off half way are lost; "
    "and h2o 2.2.5 has had no security fixes since 2018 (none of CVE-2023-44487 HTTP/2 rapid reset, "
    "CVE-2024-25622, CVE-2024-45403, CVE-2024-45397). Build on h2o ${BERTH_H2O_COMMIT} instead: "
    "set BERTH_H2O_SOURCE to its tarball or tree, or allow access to ${BERTH_H2O_GIT_URL}.")
else()
  set(BERTH_H2O_STREAMING 1)
endif()
target_compile_definitions(berth_h2o INTERFACE BERTH_H2O_STREAMING=${BERTH_H2O_STREAMING}
  "BERTH_H2O_ORIGIN=\"${BERTH_H2O_ORIGIN}\"")
