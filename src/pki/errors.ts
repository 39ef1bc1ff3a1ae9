/** A certificate, key or CRL that cannot be used; the message is fit for a config error line. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
}
