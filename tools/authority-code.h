/* authority-code.h - one-time codes that let a confirmed case upload keys (PROTOCOL.md §6).
 *
 * 12 characters from a 32-letter alphabet without look-alikes (no 0/O, 1/I): 60 bits, so
 * guessing one of even a million outstanding codes takes ~2^40 tries, far beyond what the
 * per-address rate limit lets through. Shown as XXXX-XXXX-XXXX; accepted in any case, with
 * or without dashes and spaces. Only a keyed hash is stored: BLAKE2b-256 keyed with the
 * server's pepper, which lives outside the database so a leaked database alone does not let
 * anyone test guesses offline.
 */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

#define AUTHORITY_CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#define AUTHORITY_CODE_LEN 12
#define AUTHORITY_CODE_DISPLAY_LEN (AUTHORITY_CODE_LEN + 2)
#define AUTHORITY_CODE_HASH_LEN 32
#define AUTHORITY_PEPPER_LEN 32

/* A fresh random code, normalized (12 characters, no dashes): buf has
 * AUTHORITY_CODE_LEN + 1 bytes. */
void authority_code_generate(char buf[AUTHORITY_CODE_LEN + 1]);

/* "ABCD-EFGH-JKLM" for people; buf has AUTHORITY_CODE_DISPLAY_LEN + 1 bytes. */
void authority_code_format(const char *code, char buf[AUTHORITY_CODE_DISPLAY_LEN + 1]);

/* Uppercases, drops dashes and spaces, and checks length and alphabet. FALSE for anything
 * that cannot be a code (the caller answers "invalid code" without a database look-up). */
gboolean authority_code_normalize(const char *input, char out[AUTHORITY_CODE_LEN + 1]);

/* Keyed hash of a normalized code. */
void authority_code_hash(const char *code, const uint8_t pepper[AUTHORITY_PEPPER_LEN],
                         uint8_t hash[AUTHORITY_CODE_HASH_LEN]);

G_END_DECLS
