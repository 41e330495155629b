#include "textflag.h"

// func Lines(p unsafe.Pointer, mask uint32)
TEXT ·Lines(SB), NOSPLIT|NOFRAME, $0-12
	MOVQ p+0(FP), AX
	MOVL mask+8(FP), BX
loop:
	TESTL BX, BX
	JZ   done
	BSFL BX, CX
	MOVQ CX, DX
	SHLQ $6, DX
	PREFETCHT0 (AX)(DX*1)
	LEAL -1(BX), DX
	ANDL DX, BX
	JMP  loop
done:
	RET
