#!/usr/bin/env bash
# Installs an OpenCL runtime for the device tests: PoCL (CPU OpenCL device) and the ICD loader.
# Without it the OpenCL tests skip with a message; with it they run against the CPU reference.
set -euo pipefail
if dpkg -s pocl-opencl-icd ocl-icd-libopencl1 >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y pocl-opencl-icd ocl-icd-libopencl1
