# Finds nvcc for the CUDA backend as VIGIL_CUDA asks (AUTO: use it if found; ON: require it; OFF:
# leave CUDA out), enables the CUDA language in the including directory and sets VIGIL_HAVE_CUDA.
# Included by the top level (CUDA must be enabled where the executables linking the kernels are
# defined) and by kernels/ when it is built on its own.
if(NOT DEFINED VIGIL_CUDA)
  set(VIGIL_CUDA "AUTO" CACHE STRING "CUDA backend: AUTO (use nvcc if found), ON (require), OFF")
endif()
set(VIGIL_HAVE_CUDA OFF)
if(VIGIL_CUDA STREQUAL "OFF")
  message(STATUS "vigil: CUDA backend disabled (VIGIL_CUDA=OFF)")
else()
  # The toolkit's usual home, for shells whose PATH lacks it.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    find_program(VIGIL_NVCC nvcc)
    if(NOT VIGIL_NVCC)
      set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # sm_90 machine code (H100, H200) plus compute_90 PTX that newer GPUs compile at load.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90-real 90-virtual)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(VIGIL_HAVE_CUDA ON)
    message(STATUS "vigil: CUDA backend: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                   "architectures ${CMAKE_CUDA_ARCHITECTURES}")
  elseif(VIGIL_CUDA STREQUAL "ON")
    message(FATAL_ERROR "vigil: VIGIL_CUDA=ON but nvcc was not found (set CUDACXX or PATH)")
  else()
    message(STATUS "vigil: nvcc not found; CUDA backend left out (CPU only)")
  endif()
endif()
