#ifndef FLOWC_BASE_SPIN_H_
#define FLOWC_BASE_SPIN_H_

namespace flowc {

// One pause of a spin-wait loop: lets the sibling hyperthread run and saves power.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

}  // namespace flowc

#endif  // FLOWC_BASE_SPIN_H_
