# How fusedstats._cuda is configured: which GPU architectures it is compiled for and how
# its device code is packed, both chosen from the nvcc version, and a probe that decides
# whether the CUDA extension can be built at all.
#
# FUSEDSTATS_CUDA=AUTO (the default): any CUDA problem at configure time (no nvcc, an nvcc
# too old, an arch or flag it rejects, no static runtime, an unsupported host compiler)
# means "build without fusedstats._cuda" with a warning, never a failed `pip install`.
# FUSEDSTATS_CUDA=ON: the same problems stop the configure with the probe's error.
#
# Script mode prints the choice for one nvcc version (what tests/test_build_cuda.py checks):
#   cmake -DFS_NVCC_VERSION=12.4 -P cmake/FusedstatsCuda.cmake
#   -> archs=75-real;80-real;90
#   -> flags=--fmad=false;-O3;-Xfatbin=-compress-all
include_guard(GLOBAL)

set(FS_CUDA_MIN_VERSION 11.0)
set(_FS_CUDA_MODULE_FILE "${CMAKE_CURRENT_LIST_FILE}")
get_filename_component(_FS_CUDA_MODULE_DIR "${CMAKE_CURRENT_LIST_FILE}" DIRECTORY)

# The architectures for nvcc `version`, as a CMAKE_CUDA_ARCHITECTURES list: machine code
# (SASS) for each major GPU generation the compiler knows, and PTX of the newest of them,
# which the driver compiles at load time on GPUs newer than the list. Empty when the
# compiler is older than FS_CUDA_MIN_VERSION.
#   75  Turing (T4, RTX 20xx)                                    CUDA 10.0+
#   80  Ampere (A100); its SASS also runs on sm_86/sm_87/sm_89    CUDA 11.0+
#   90  Hopper (H100, H200)                                      CUDA 11.8+
#   100 Blackwell (B200; its SASS also runs on sm_103)           CUDA 12.8+
#   120 Blackwell RTX (RTX 50xx, RTX PRO; also sm_121)           CUDA 12.8+
# SASS runs on any GPU of the same major version and an equal or higher minor one, so one
# image per major generation is enough. Older GPUs (sm_70 and below) are left out: CUDA 13
# dropped them and few training machines still have them.
function(fusedstats_cuda_archs version out_var)
  set(archs "")
  if(version VERSION_GREATER_EQUAL FS_CUDA_MIN_VERSION)
    set(archs 75 80)
    if(version VERSION_GREATER_EQUAL 11.8)
      list(APPEND archs 90)
    endif()
    if(version VERSION_GREATER_EQUAL 12.8)
      list(APPEND archs 100 120)
    endif()
  endif()
  set(result "")
  list(LENGTH archs n)
  set(i 0)
  foreach(arch IN LISTS archs)
    math(EXPR i "${i} + 1")
    if(i EQUAL n)
      list(APPEND result "${arch}") # SASS and PTX
    else()
      list(APPEND result "${arch}-real")
    endif()
  endforeach()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

# nvcc flags of every fusedstats CUDA source for nvcc `version`.
# --fmad=false: no contraction beyond the FMAs stats.h asks for (same rounding as the CPU).
# -Xfatbin=-compress-all: compress every image in the fatbin, PTX included (the extension
#   shrinks from ~4.1 MB to ~0.8 MB of device code); the driver decompresses at load.
# --compress-mode=size (nvcc 13+): a denser codec. With CUDA 12 it would raise the driver
#   floor from 525 to 550; CUDA 13 binaries need driver 580 anyway, so it costs nothing there.
function(fusedstats_cuda_flags version out_var)
  set(flags --fmad=false -O3 -Xfatbin=-compress-all)
  if(version VERSION_GREATER_EQUAL 13.0)
    list(APPEND flags --compress-mode=size)
  endif()
  set(${out_var} "${flags}" PARENT_SCOPE)
endfunction()

# The nvcc CMake would pick (same order as CMake's own search), or "" when there is none.
function(_fusedstats_cuda_candidate out_var)
  if(CMAKE_CUDA_COMPILER)
    set(found "${CMAKE_CUDA_COMPILER}")
  elseif(NOT "$ENV{CUDACXX}" STREQUAL "")
    get_filename_component(found "$ENV{CUDACXX}" PROGRAM)
  else()
    find_program(FS_NVCC_CANDIDATE nvcc PATHS "$ENV{CUDA_PATH}/bin")
    set(found "${FS_NVCC_CANDIDATE}")
    if(NOT found)
      set(found "")
    endif()
  endif()
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

# Decides whether fusedstats._cuda is built. Sets in the caller's scope:
#   FS_BUILD_CUDA   ON or OFF
#   FS_CUDA_STATUS  one line for build_info() and the configure log
#   FS_CUDA_FLAGS   nvcc flags for CUDA sources (see fusedstats_cuda_flags)
# and, when ON and the user gave no architectures (CMAKE_CUDA_ARCHITECTURES or the CUDAARCHS
# environment variable), CMAKE_CUDA_ARCHITECTURES, so that enable_language(CUDA) and every
# CUDA target get the probed list. Call it before enable_language(CUDA).
#
# The probe configures and builds cmake/cuda_probe (a small kernel, with these archs and
# flags, linked as a module against the static runtime) in a child CMake, so a failure is a
# result, not a fatal error; enable_language(CUDA) itself cannot fail softly. The result is
# cached per compiler, settings and probe sources, so a rebuild does not probe again.
macro(fusedstats_find_cuda mode)
  string(TOUPPER "${mode}" _fs_mode)
  if(NOT _fs_mode MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "FUSEDSTATS_CUDA must be AUTO, ON or OFF, not '${mode}'")
  endif()
  set(FS_BUILD_CUDA OFF)
  set(FS_CUDA_FLAGS "")
  if(_fs_mode STREQUAL "OFF")
    set(FS_CUDA_STATUS "not built: FUSEDSTATS_CUDA=OFF")
  else()
    _fusedstats_probe_cuda(_fs_ok _fs_reason)
    if(_fs_ok)
      set(FS_BUILD_CUDA ON)
      set(CMAKE_CUDA_COMPILER "${FS_CUDA_PROBE_COMPILER}" CACHE FILEPATH "CUDA compiler" FORCE)
      if(NOT FS_CUDA_PROBE_USER_ARCHS)
        set(CMAKE_CUDA_ARCHITECTURES "${FS_CUDA_PROBE_ARCHS}")
      endif()
      fusedstats_cuda_flags("${FS_CUDA_PROBE_VERSION}" FS_CUDA_FLAGS)
      set(FS_CUDA_STATUS
          "built: nvcc ${FS_CUDA_PROBE_VERSION}, archs ${FS_CUDA_PROBE_ARCHS}")
      message(STATUS "fusedstats: building fusedstats._cuda (nvcc ${FS_CUDA_PROBE_VERSION}, "
                     "archs ${FS_CUDA_PROBE_ARCHS})")
    elseif(_fs_mode STREQUAL "ON")
      message(FATAL_ERROR "FUSEDSTATS_CUDA=ON but fusedstats._cuda cannot be built: ${_fs_reason}")
    else()
      set(FS_CUDA_STATUS "not built: ${_fs_reason}")
      if(FS_CUDA_PROBE_COMPILER)
        message(WARNING "fusedstats: building without fusedstats._cuda (CUDA tensors will use "
                        "the pure-torch path): ${_fs_reason}. FUSEDSTATS_CUDA=ON makes this an "
                        "error; CMAKE_CUDA_ARCHITECTURES or CUDAARCHS picks other archs.")
      else()
        message(STATUS "fusedstats: no nvcc found, building without fusedstats._cuda")
      endif()
    endif()
  endif()
endmacro()

function(_fusedstats_probe_cuda ok_var reason_var)
  _fusedstats_cuda_candidate(compiler)
  set(FS_CUDA_PROBE_COMPILER "${compiler}" PARENT_SCOPE)
  if(compiler STREQUAL "")
    set(${ok_var} OFF PARENT_SCOPE)
    set(${reason_var} "no nvcc found (PATH, CUDACXX, CUDA_PATH)" PARENT_SCOPE)
    return()
  endif()

  set(user_archs "")
  if(DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(user_archs "${CMAKE_CUDA_ARCHITECTURES}")
  elseif(NOT "$ENV{CUDAARCHS}" STREQUAL "")
    set(user_archs "$ENV{CUDAARCHS}")
  endif()
  file(SHA256 "${_FS_CUDA_MODULE_FILE}" module_hash)
  file(SHA256 "${_FS_CUDA_MODULE_DIR}/cuda_probe/CMakeLists.txt" probe_hash)
  file(SHA256 "${_FS_CUDA_MODULE_DIR}/cuda_probe/probe.cu" probe_src_hash)
  if(EXISTS "${compiler}")
    file(TIMESTAMP "${compiler}" compiler_time)
  endif()
  set(key "${compiler}|${compiler_time}|${CMAKE_CUDA_HOST_COMPILER}|$ENV{CUDAHOSTCXX}|"
          "${user_archs}|$ENV{NVCC_PREPEND_FLAGS}|$ENV{NVCC_APPEND_FLAGS}|"
          "${module_hash}|${probe_hash}|${probe_src_hash}")
  string(JOIN "" key ${key})

  if(NOT key STREQUAL "${FS_CUDA_PROBE_KEY}")
    message(CHECK_START "fusedstats: probing CUDA compiler ${compiler}")
    set(bin "${CMAKE_BINARY_DIR}/CMakeFiles/fusedstats_cuda_probe")
    file(REMOVE_RECURSE "${bin}")
    set(flags "-DCMAKE_CUDA_COMPILER:FILEPATH=${compiler}"
              "-DFS_CUDA_MODULE:FILEPATH=${_FS_CUDA_MODULE_FILE}")
    if(CMAKE_CUDA_HOST_COMPILER)
      list(APPEND flags "-DCMAKE_CUDA_HOST_COMPILER:FILEPATH=${CMAKE_CUDA_HOST_COMPILER}")
    endif()
    if(DEFINED CMAKE_CUDA_ARCHITECTURES)
      string(REPLACE ";" "\\;" escaped "${CMAKE_CUDA_ARCHITECTURES}")
      list(APPEND flags "-DCMAKE_CUDA_ARCHITECTURES:STRING=${escaped}")
    endif()
    if(user_archs STREQUAL "")
      list(APPEND flags "-DFS_USER_ARCHS:BOOL=OFF")
    else()
      list(APPEND flags "-DFS_USER_ARCHS:BOOL=ON")
    endif()
    if(CMAKE_GENERATOR_PLATFORM)
      list(APPEND flags -A "${CMAKE_GENERATOR_PLATFORM}")
    endif()
    if(CMAKE_GENERATOR_TOOLSET)
      list(APPEND flags -T "${CMAKE_GENERATOR_TOOLSET}")
    endif()
    if(CMAKE_MAKE_PROGRAM)
      list(APPEND flags "-DCMAKE_MAKE_PROGRAM:FILEPATH=${CMAKE_MAKE_PROGRAM}")
    endif()
    if(CMAKE_TOOLCHAIN_FILE)
      list(APPEND flags "-DCMAKE_TOOLCHAIN_FILE:FILEPATH=${CMAKE_TOOLCHAIN_FILE}")
    endif()
    execute_process(
      COMMAND "${CMAKE_COMMAND}" -S "${_FS_CUDA_MODULE_DIR}/cuda_probe" -B "${bin}"
              -G "${CMAKE_GENERATOR}" ${flags}
      OUTPUT_VARIABLE output ERROR_VARIABLE output RESULT_VARIABLE rc TIMEOUT 600)
    set(built OFF)
    if(rc EQUAL 0)
      execute_process(
        COMMAND "${CMAKE_COMMAND}" --build "${bin}"
        OUTPUT_VARIABLE build_output ERROR_VARIABLE build_output RESULT_VARIABLE rc
        TIMEOUT 600)
      string(APPEND output "${build_output}")
      if(rc EQUAL 0)
        set(built ON)
      endif()
    endif()
    set(log "${CMAKE_BINARY_DIR}/fusedstats_cuda_probe.log")
    file(WRITE "${log}" "${output}")
    set(result_file "${bin}/fusedstats_cuda_probe_result.cmake")
    unset(FS_PROBE_VERSION)
    unset(FS_PROBE_ARCHS)
    unset(FS_PROBE_ERROR)
    if(EXISTS "${result_file}")
      include("${result_file}")
    endif()
    if(built AND DEFINED FS_PROBE_ARCHS)
      set(reason "")
      message(CHECK_PASS "nvcc ${FS_PROBE_VERSION}")
    else()
      if(DEFINED FS_PROBE_ERROR)
        set(reason "${FS_PROBE_ERROR}")
      else()
        _fusedstats_probe_error("${output}" reason)
        if(DEFINED FS_PROBE_VERSION)
          set(reason "nvcc ${FS_PROBE_VERSION}: ${reason}")
        endif()
      endif()
      set(reason "${compiler}: ${reason}")
      set(reason "${reason} (full log: ${log})")
      set(FS_PROBE_ARCHS "")
      message(CHECK_FAIL "failed")
    endif()
    set(FS_CUDA_PROBE_KEY "${key}" CACHE INTERNAL "")
    set(FS_CUDA_PROBE_REASON "${reason}" CACHE INTERNAL "")
    set(FS_CUDA_PROBE_VERSION "${FS_PROBE_VERSION}" CACHE INTERNAL "")
    set(FS_CUDA_PROBE_ARCHS "${FS_PROBE_ARCHS}" CACHE INTERNAL "")
  endif()

  if(FS_CUDA_PROBE_REASON STREQUAL "")
    set(${ok_var} ON PARENT_SCOPE)
  else()
    set(${ok_var} OFF PARENT_SCOPE)
  endif()
  set(${reason_var} "${FS_CUDA_PROBE_REASON}" PARENT_SCOPE)
  set(FS_CUDA_PROBE_VERSION "${FS_CUDA_PROBE_VERSION}" PARENT_SCOPE)
  set(FS_CUDA_PROBE_ARCHS "${FS_CUDA_PROBE_ARCHS}" PARENT_SCOPE)
  if(user_archs STREQUAL "")
    set(FS_CUDA_PROBE_USER_ARCHS OFF PARENT_SCOPE)
  else()
    set(FS_CUDA_PROBE_USER_ARCHS ON PARENT_SCOPE)
  endif()
endfunction()

# The first lines of the probe's output that say what went wrong, joined into one line.
function(_fusedstats_probe_error output out_var)
  string(REPLACE "\r" "" output "${output}")
  string(REPLACE ";" "," output "${output}")
  string(REPLACE "\n" ";" lines "${output}")
  set(picked "")
  foreach(line IN LISTS lines)
    string(STRIP "${line}" line)
    if(line MATCHES "[Ff]atal|[Ee]rror[: ]|not supported|[Uu]nsupported")
      if(line MATCHES "^CMake Error at|^-- |Configuring incomplete|Generate step")
        continue()
      endif()
      list(FIND picked "${line}" seen)
      if(seen EQUAL -1)
        list(APPEND picked "${line}")
      endif()
      list(LENGTH picked n)
      if(n EQUAL 3)
        break()
      endif()
    endif()
  endforeach()
  if(picked STREQUAL "")
    set(picked "the CUDA probe project failed to configure or build")
  endif()
  string(JOIN " | " joined ${picked})
  set(${out_var} "${joined}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT DEFINED FS_NVCC_VERSION)
    message(FATAL_ERROR "usage: cmake -DFS_NVCC_VERSION=12.4 -P ${CMAKE_CURRENT_LIST_FILE}")
  endif()
  fusedstats_cuda_archs("${FS_NVCC_VERSION}" archs)
  fusedstats_cuda_flags("${FS_NVCC_VERSION}" flags)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "archs=${archs}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "flags=${flags}")
endif()
