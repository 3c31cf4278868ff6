# Locate ggml (see third_party/README.md). Defines the imported targets
# ggml::ggml, ggml::ggml-base (and ggml::ggml-cpu where it is linked in), and
# MIMO_GGML_LIB_DIR.

set(MIMO_GGML_PREFIX "$ENV{MIMO_GGML_PREFIX}" CACHE PATH "ggml install prefix to use instead of the libggml Python package")

if(MIMO_GGML_BUNDLE_GGML)
  include("${CMAKE_CURRENT_LIST_DIR}/ggml_bundle.cmake")
  return()
endif()

set(_mimo_ggml_hints "")
if(MIMO_GGML_PREFIX)
  list(APPEND _mimo_ggml_hints "${MIMO_GGML_PREFIX}")
endif()
# The libggml package's own location, from the Python doing the build.
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "import libggml, os; print(os.path.dirname(libggml.__file__))"
  OUTPUT_VARIABLE _mimo_libggml_dir OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _mimo_libggml_rc ERROR_QUIET)
if(_mimo_libggml_rc EQUAL 0 AND _mimo_libggml_dir)
  list(APPEND _mimo_ggml_hints "${_mimo_libggml_dir}")
endif()

find_package(ggml 0.20.2 CONFIG REQUIRED
  HINTS ${_mimo_ggml_hints}
  PATH_SUFFIXES lib64/cmake/ggml lib/cmake/ggml)

set(MIMO_GGML_LIB_DIR "${GGML_LIB_DIR}")
message(STATUS "mimo-ggml: using ggml ${ggml_VERSION} from ${ggml_DIR} (backends: ${GGML_AVAILABLE_BACKENDS})")
