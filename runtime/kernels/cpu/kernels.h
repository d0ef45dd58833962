// Every CPU kernel; generated step functions include this one header.
#pragma once

#include "conv.h"
#include "elementwise.h"
#include "gather_elements.h"
#include "gemm.h"
#include "group_norm.h"
#include "layout.h"
#include "normalization.h"
#include "parallel.h"
#include "pool.h"
#include "reduce.h"
#include "resize.h"
#include "vmath.h"
