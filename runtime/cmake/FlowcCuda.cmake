# CUDA for the runtime's cuda device and for generated CUDA projects: the toolkit (nvcc and
# CUDA::cudart) and imported targets for the libraries a bare toolkit may lack: flowc::cublasLt,
# flowc::cublas and, where NCCL is found, flowc::nccl. A CUDA install that has cuBLAS is used as
# it is; otherwise cuBLAS comes from the pip wheels of `pip install "flowc[cuda]"`, whose versioned
# names (libcublasLt.so.13) find_package(CUDAToolkit) does not look for. The targets are global,
# so that sibling folders (runtime/kernels/cuda) and the project above see them; CMake puts the
# wheels' folders in the build's RUNPATH.
include_guard(GLOBAL)

set(_flowc_cuda_install
    "pip install \"flowc[cuda]\" (the wheels cuda-toolkit[cublas,cudart,nvrtc]==13.0.2 and nvidia-nccl-cu13==2.32.3) into the Python that CMake finds (choose it with -DPython3_EXECUTABLE=...), or install a CUDA toolkit that has cuBLAS")

# Only targets that find_package makes here may be promoted to global.
set(_flowc_cuda_new_targets)
foreach(target CUDA::cudart CUDA::cublas CUDA::cublasLt)
  if(NOT TARGET ${target})
    list(APPEND _flowc_cuda_new_targets ${target})
  endif()
endforeach()
find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  message(FATAL_ERROR "FLOWC_CUDA: no CUDA toolkit found (nvcc and the CUDA runtime): install CUDA 13 and put "
                      "its nvcc on PATH, or set CUDAToolkit_ROOT")
endif()
foreach(target IN LISTS _flowc_cuda_new_targets)
  if(TARGET ${target})
    set_property(TARGET ${target} PROPERTY IMPORTED_GLOBAL TRUE)
  endif()
endforeach()

# A shared library `file` with its headers in `include_dir`, as imported target `target`.
function(_flowc_cuda_import target file include_dir)
  add_library(${target} SHARED IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${file}" INTERFACE_INCLUDE_DIRECTORIES "${include_dir}")
endfunction()

# The site-packages folder of Python module `module` (nvidia.cu13, nvidia.nccl), or "" without it.
function(_flowc_cuda_wheel module out_folder)
  set(folder "")
  if(NOT Python3_Interpreter_FOUND)
    find_package(Python3 COMPONENTS Interpreter QUIET)
  endif()
  if(Python3_Interpreter_FOUND)
    execute_process(COMMAND "${Python3_EXECUTABLE}" -c "import ${module} as m; print(list(m.__path__)[0])"
                    OUTPUT_VARIABLE folder OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
    if(failed)
      set(folder "")
    endif()
  endif()
  set(${out_folder} "${folder}" PARENT_SCOPE)
endfunction()

set(_flowc_cuda_major ${CUDAToolkit_VERSION_MAJOR})
if(TARGET CUDA::cublasLt AND TARGET CUDA::cublas)
  add_library(flowc::cublasLt INTERFACE IMPORTED GLOBAL)
  target_link_libraries(flowc::cublasLt INTERFACE CUDA::cublasLt)
  add_library(flowc::cublas INTERFACE IMPORTED GLOBAL)
  target_link_libraries(flowc::cublas INTERFACE CUDA::cublas)
  set(_flowc_cuda_blas "the CUDA toolkit (${CUDAToolkit_LIBRARY_DIR})")
else()
  _flowc_cuda_wheel(nvidia.cu${_flowc_cuda_major} _flowc_cuda_wheels)
  set(_flowc_cuda_lib "${_flowc_cuda_wheels}/lib")
  if(NOT _flowc_cuda_wheels OR NOT EXISTS "${_flowc_cuda_lib}/libcublasLt.so.${_flowc_cuda_major}"
     OR NOT EXISTS "${_flowc_cuda_lib}/libcublas.so.${_flowc_cuda_major}")
    message(FATAL_ERROR
      "FLOWC_CUDA: cuBLAS/cuBLASLt not found: the CUDA ${CUDAToolkit_VERSION} toolkit in ${CUDAToolkit_LIBRARY_DIR} "
      "has none, and the Python at '${Python3_EXECUTABLE}' has no nvidia.cu${_flowc_cuda_major} wheel with them. "
      "${_flowc_cuda_install}")
  endif()
  _flowc_cuda_import(flowc::cublasLt "${_flowc_cuda_lib}/libcublasLt.so.${_flowc_cuda_major}"
                     "${_flowc_cuda_wheels}/include")
  _flowc_cuda_import(flowc::cublas "${_flowc_cuda_lib}/libcublas.so.${_flowc_cuda_major}" "${_flowc_cuda_wheels}/include")
  set_property(TARGET flowc::cublas PROPERTY INTERFACE_LINK_LIBRARIES flowc::cublasLt)
  set(_flowc_cuda_blas "the wheel in ${_flowc_cuda_wheels}")
endif()

# NCCL: a system or toolkit install first, else the wheel. Only multi-GPU meshes need it.
# The communicator needs ncclCommSplit: NCCL 2.18 or newer; an older system NCCL is passed over.
function(_flowc_nccl_recent header out_ok)
  file(STRINGS "${header}" lines REGEX "^#define NCCL_(MAJOR|MINOR) +[0-9]+")
  string(REGEX MATCH "NCCL_MAJOR +([0-9]+)" _ "${lines}")
  set(major "${CMAKE_MATCH_1}")
  string(REGEX MATCH "NCCL_MINOR +([0-9]+)" _ "${lines}")
  set(minor "${CMAKE_MATCH_1}")
  if(major AND (major GREATER 2 OR (major EQUAL 2 AND minor GREATER_EQUAL 18)))
    set(${out_ok} TRUE PARENT_SCOPE)
  else()
    message(STATUS "flowc CUDA: NCCL ${major}.${minor} in ${header} is older than 2.18; not used")
    set(${out_ok} FALSE PARENT_SCOPE)
  endif()
endfunction()

find_library(FLOWC_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${CUDAToolkit_LIBRARY_DIR})
find_path(FLOWC_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
set(_flowc_nccl_system_ok FALSE)
if(FLOWC_NCCL_LIBRARY AND FLOWC_NCCL_INCLUDE_DIR)
  _flowc_nccl_recent("${FLOWC_NCCL_INCLUDE_DIR}/nccl.h" _flowc_nccl_system_ok)
endif()
if(_flowc_nccl_system_ok)
  _flowc_cuda_import(flowc::nccl "${FLOWC_NCCL_LIBRARY}" "${FLOWC_NCCL_INCLUDE_DIR}")
  set(_flowc_cuda_nccl "from ${FLOWC_NCCL_LIBRARY}")
else()
  _flowc_cuda_wheel(nvidia.nccl _flowc_nccl_wheel)
  if(_flowc_nccl_wheel AND EXISTS "${_flowc_nccl_wheel}/lib/libnccl.so.2" AND EXISTS "${_flowc_nccl_wheel}/include/nccl.h")
    _flowc_cuda_import(flowc::nccl "${_flowc_nccl_wheel}/lib/libnccl.so.2" "${_flowc_nccl_wheel}/include")
    set(_flowc_cuda_nccl "from the wheel in ${_flowc_nccl_wheel}")
  else()
    set(_flowc_cuda_nccl "not found (multi-GPU meshes need it: ${_flowc_cuda_install})")
  endif()
endif()
message(STATUS "flowc CUDA: toolkit ${CUDAToolkit_VERSION}, cuBLAS from ${_flowc_cuda_blas}, NCCL ${_flowc_cuda_nccl}")
