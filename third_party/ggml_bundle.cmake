# The dispatching ggml the wheels bundle (MIMO_GGML_BUNDLE_GGML=ON):
# GGML_BACKEND_DL, every CPU variant as a module (x86_64), RPC; built by
# tools/build_ggml.sh from the pinned libggml-python sdist into a prefix.
# MIMO_GGML_PREFIX names a prefix built beforehand (cibuildwheel's
# before-all, or a developer's); without it the script runs here, once per
# build folder (long: 14 CPU variants).
#
# Only libggml and libggml-base are linked; the backends are found at run
# time (ggml_backend_load_all_from_path on mimo_ggml/ggml/), so the CPU
# extras go through ggml_backend_reg_get_proc_address.

option(MIMO_GGML_NATIVE_CPU "bundle one CPU module compiled for this machine instead of every variant" OFF)
if(NOT MIMO_GGML_PREFIX)
  set(_mimo_script_args "")
  if(MIMO_GGML_NATIVE_CPU)
    set(_mimo_script_args -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_NATIVE=ON)
  endif()
  set(MIMO_GGML_PREFIX "${CMAKE_BINARY_DIR}/ggml-prefix")
  if(NOT EXISTS "${MIMO_GGML_PREFIX}/include/ggml.h")
    message(STATUS "mimo-ggml: building the bundled ggml (tools/build_ggml.sh) into ${MIMO_GGML_PREFIX}")
    find_program(_mimo_bash bash REQUIRED)
    execute_process(
      COMMAND "${_mimo_bash}" "${CMAKE_CURRENT_LIST_DIR}/../tools/build_ggml.sh" "${MIMO_GGML_PREFIX}" ${_mimo_script_args}
      RESULT_VARIABLE _mimo_rc)
    if(NOT _mimo_rc EQUAL 0)
      message(FATAL_ERROR "mimo-ggml: building the bundled ggml failed (${_mimo_rc})")
    endif()
  endif()
endif()

set(MIMO_GGML_INCLUDE_DIR "${MIMO_GGML_PREFIX}/include")
find_path(_mimo_ggml_h ggml-backend.h PATHS "${MIMO_GGML_INCLUDE_DIR}" NO_DEFAULT_PATH REQUIRED)
find_path(_mimo_ggml_rpc_h ggml-rpc.h PATHS "${MIMO_GGML_INCLUDE_DIR}" NO_DEFAULT_PATH REQUIRED)

foreach(_lib ggml ggml-base)
  find_library(_mimo_${_lib}_lib NAMES ${_lib} PATHS "${MIMO_GGML_PREFIX}/lib" "${MIMO_GGML_PREFIX}/lib64"
               NO_DEFAULT_PATH REQUIRED)
  add_library(ggml::${_lib} SHARED IMPORTED)
  set_target_properties(ggml::${_lib} PROPERTIES
    IMPORTED_LOCATION "${_mimo_${_lib}_lib}"
    IMPORTED_IMPLIB "${_mimo_${_lib}_lib}"
    INTERFACE_INCLUDE_DIRECTORIES "${MIMO_GGML_INCLUDE_DIR}")
endforeach()
get_filename_component(MIMO_GGML_LIB_DIR "${_mimo_ggml-base_lib}" DIRECTORY)

# Everything the wheel carries: libggml, libggml-base and the backend modules
# (ggml-cpu-*, ggml-rpc, ggml-cuda/metal where built), with their symlinks.
if(WIN32)
  file(GLOB MIMO_GGML_RUNTIME_FILES "${MIMO_GGML_PREFIX}/bin/ggml*.dll" "${MIMO_GGML_PREFIX}/lib/ggml*.dll")
elseif(APPLE)
  file(GLOB MIMO_GGML_RUNTIME_FILES "${MIMO_GGML_LIB_DIR}/libggml*.dylib" "${MIMO_GGML_LIB_DIR}/libggml*.so")
else()
  # the modules, and libggml / libggml-base under their sonames (a wheel cannot hold symlinks:
  # one file per library, the name the dynamic loader looks for)
  file(GLOB _mimo_modules "${MIMO_GGML_LIB_DIR}/libggml-*.so")
  set(MIMO_GGML_RUNTIME_FILES "")
  foreach(_f ${_mimo_modules})
    if(NOT IS_SYMLINK "${_f}")
      list(APPEND MIMO_GGML_RUNTIME_FILES "${_f}")
    endif()
  endforeach()
  file(GLOB MIMO_GGML_SONAME_LINKS "${MIMO_GGML_LIB_DIR}/libggml.so.[0-9]" "${MIMO_GGML_LIB_DIR}/libggml-base.so.[0-9]")
endif()
set(MIMO_GGML_DL ON)
message(STATUS "mimo-ggml: bundling the dispatching ggml from ${MIMO_GGML_PREFIX}: ${MIMO_GGML_RUNTIME_FILES}")
