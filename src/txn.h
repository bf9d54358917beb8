/*-------------------------------------------------------------------------
 *
 * txn.h
 *	  The worker's short transactions.
 *
 * IDENTIFICATION
 *	  src/txn.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_TXN_H
#define ASR_TXN_H

extern void asr_tx_begin(const char *what);
extern void asr_tx_commit(void);
extern void asr_tx_abort(void);
extern bool asr_tx_extension_present(void);

/* txtry.c: a completion's work in a transaction of its own */
extern bool asr_tx_try(const char *what, bool (*fn) (void *arg), void *arg);

#endif							/* ASR_TXN_H */
