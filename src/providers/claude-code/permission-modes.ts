/** The permission modes of `--permission-mode` and `set_permission_mode` (2.1.197). */
export const PERMISSION_MODES: readonly string[] = ["default", "acceptEdits", "plan", "dontAsk", "auto", "bypassPermissions"];
