// An independent check of `kann devices`' FP32 peak: the same kind of loop written with C
// intrinsics (24 zmm / 12 ymm accumulators, gcc code generation, distinct start values so
// nothing folds), timed with clock_gettime. Build and run:
//   gcc -O2 -o /tmp/peak-check scripts/peak-check.c
//   /tmp/peak-check 512 150000 s     # best slice over 150 ms, zmm (needs AVX-512; kann: fp32-avx512)
//   /tmp/peak-check 256 300000 s     # same, ymm (kann: fp32-avx2)
//   /tmp/peak-check 512 30000000     # 5 long runs: wall-clock and per-CPU-second rates
//   (taskset -c 0 /tmp/peak-check 512 150000 s & taskset -c 1 /tmp/peak-check 512 150000 s & wait)  # all cores
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static double cpu(void){struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
__attribute__((target("avx512f"),noinline)) float z(long n, float a, float b){
  __m512 va=_mm512_set1_ps(a), vb=_mm512_set1_ps(b);
  __m512 c0=_mm512_set1_ps(0.5f),c1=_mm512_set1_ps(1.5f),c2=_mm512_set1_ps(2.5f),c3=_mm512_set1_ps(3.5f),c4=_mm512_set1_ps(4.5f),c5=_mm512_set1_ps(5.5f),c6=_mm512_set1_ps(6.5f),c7=_mm512_set1_ps(7.5f),c8=_mm512_set1_ps(8.5f),c9=_mm512_set1_ps(9.5f),c10=_mm512_set1_ps(10.5f),c11=_mm512_set1_ps(11.5f),c12=_mm512_set1_ps(12.5f),c13=_mm512_set1_ps(13.5f),c14=_mm512_set1_ps(14.5f),c15=_mm512_set1_ps(15.5f),c16=_mm512_set1_ps(16.5f),c17=_mm512_set1_ps(17.5f),c18=_mm512_set1_ps(18.5f),c19=_mm512_set1_ps(19.5f),c20=_mm512_set1_ps(20.5f),c21=_mm512_set1_ps(21.5f),c22=_mm512_set1_ps(22.5f),c23=_mm512_set1_ps(23.5f);
  for(long i=0;i<n;i++){
#define F(c) c=_mm512_fmadd_ps(c,va,vb);
    F(c0)F(c1)F(c2)F(c3)F(c4)F(c5)F(c6)F(c7)F(c8)F(c9)F(c10)F(c11)F(c12)F(c13)F(c14)F(c15)F(c16)F(c17)F(c18)F(c19)F(c20)F(c21)F(c22)F(c23)
  }
  __m512 s=_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0,c1),_mm512_add_ps(c2,c3)),_mm512_add_ps(_mm512_add_ps(c4,c5),_mm512_add_ps(c6,c7)));
  s=_mm512_add_ps(s,_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c8,c9),_mm512_add_ps(c10,c11)),_mm512_add_ps(_mm512_add_ps(c12,c13),_mm512_add_ps(c14,c15))));
  s=_mm512_add_ps(s,_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c16,c17),_mm512_add_ps(c18,c19)),_mm512_add_ps(_mm512_add_ps(c20,c21),_mm512_add_ps(c22,c23))));
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"),noinline)) float y(long n, float a, float b){
  __m256 va=_mm256_set1_ps(a), vb=_mm256_set1_ps(b);
  __m256 c0=_mm256_set1_ps(0.5f),c1=_mm256_set1_ps(1.5f),c2=_mm256_set1_ps(2.5f),c3=_mm256_set1_ps(3.5f),c4=_mm256_set1_ps(4.5f),c5=_mm256_set1_ps(5.5f),c6=_mm256_set1_ps(6.5f),c7=_mm256_set1_ps(7.5f),c8=_mm256_set1_ps(8.5f),c9=_mm256_set1_ps(9.5f),c10=_mm256_set1_ps(10.5f),c11=_mm256_set1_ps(11.5f);
  for(long i=0;i<n;i++){
#define G(c) c=_mm256_fmadd_ps(c,va,vb);
    G(c0)G(c1)G(c2)G(c3)G(c4)G(c5)G(c6)G(c7)G(c8)G(c9)G(c10)G(c11)
  }
  __m256 s=_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0,c1),_mm256_add_ps(c2,c3)),_mm256_add_ps(_mm256_add_ps(c4,c5),_mm256_add_ps(c6,c7)));
  s=_mm256_add_ps(s,_mm256_add_ps(_mm256_add_ps(c8,c9),_mm256_add_ps(c10,c11)));
  float o[8]; _mm256_storeu_ps(o,s); return o[0];
}
int main(int argc,char**argv){
  if(argc>3){ /* best 1 ms slice over 150 ms, as kann does, but C intrinsics and clock_gettime */
    int w=atoi(argv[1]); long n=atol(argv[2]); double best=0, start=now();
    while(now()-start<0.15){ double t=now(); volatile float sk = w==512? z(n,0.999f,1e-3f) : y(n,0.999f,1e-3f); (void)sk; t=now()-t;
      double r=(double)n*(w==512?24*32:12*16)/t/1e9; if(r>best) best=r; }
    printf("%s best slice: %.1f GFLOP/s\n", w==512?"zmm":"ymm", best); return 0; }
  long n=argc>2?atol(argv[2]):100000000; int w=argc>1?atoi(argv[1]):512;
  for(int rep=0;rep<5;rep++){
    double t=now(), c=cpu(); float r = w==512? z(n,0.999f,1e-3f): y(n,0.999f,1e-3f); t=now()-t; c=cpu()-c;
    double flop = (double)n * (w==512? 24*32 : 12*16);
    printf("%s rep %d: %.1f GFLOP/s wall, %.1f GFLOP/s per CPU-second (%.3f s wall, %.3f s cpu, sink %g)\n", w==512?"zmm":"ymm", rep, flop/t/1e9, flop/c/1e9, t, c, r);
  }
}
