/** A whole number 0-`max` from the environment (a store tuning knob); unset or empty is `fallback`, anything else refused by name. */
export function wholeNumberFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > max) throw new Error(`${name} must be an integer 0-${max} (got '${raw}')`);
  return value;
}
