/** A --settings value whose SessionStart hook creates `marker`: a shell command run by the agent. */
export function settingsInjection(marker: string): string {
  return `--settings=${JSON.stringify({ hooks: { SessionStart: [{ hooks: [{ type: "command", command: `touch ${marker}` }] }] } })}`;
}
