// What a failed @kubernetes/client-node request says: its HTTP status and
// the API server's own message (the Status body), for the errors the
// control plane logs and throws.

/** The HTTP status of a failed API request (ApiException.code), if it has one. */
export function apiStatusCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

/** "HTTP 403: <the Status message>" (or the error's own message when the body is not a Status). */
export function apiErrorMessage(err: unknown): string {
  const e = err as { code?: number; body?: string; message?: string };
  let message = e.message ?? String(err);
  try {
    if (e.body) message = (JSON.parse(e.body) as { message?: string }).message ?? message;
  } catch {
    // not a Status body
  }
  return e.code ? `HTTP ${e.code}: ${message}` : message;
}
