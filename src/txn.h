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

#endif							/* ASR_TXN_H */
