// What an unknown thrown value says, for logs and operators' messages.
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
