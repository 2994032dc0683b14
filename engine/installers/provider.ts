// What an installer is to the install cache (caches/installCache.ts): given one parsed
// requirement and an empty directory, it fills the directory and says what it measured. Each
// installer (debian.ts, pip.ts) implements it; the cache picks one and never looks inside.

export interface ParsedRequirement {
  /** The line as the handler wrote it (trimmed). */
  line: string;
  /** The normalized PyPI name (PEP 503). */
  name: string;
  /** The version specifier with its spaces taken out ('==1.24.2', '>=9,<11'), or ''. */
  specifier: string;
}

export interface InstallProvider {
  readonly name: 'debian' | 'pip';
  /**
   * Installs requirement into `into` (an empty, fresh directory) with python/ and lib/; returns
   * what it measured. Throws an Error with a one-line message naming the package on failure.
   */
  install(
    requirement: ParsedRequirement,
    into: string,
    signal?: AbortSignal,
  ): Promise<{ version: string; downloadMs: number; installMs: number }>;
}
