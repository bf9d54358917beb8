/*-------------------------------------------------------------------------
 *
 * fuzz_worker.h
 *	  The targets of fuzz_worker.c: the worker's readers of item documents,
 *	  recovery point listings and list pages.
 *
 * IDENTIFICATION
 *	  test/fuzz/fuzz_worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ASR_FUZZ_WORKER_H
#define ASR_FUZZ_WORKER_H

extern void fuzz_target_item(const char *data, size_t size);
extern void fuzz_target_points(const char *data, size_t size);
extern void fuzz_target_list(const char *data, size_t size);

#endif							/* ASR_FUZZ_WORKER_H */
