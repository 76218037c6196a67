// qrcode-terminal ships no types (and @types/qrcode-terminal is not a dependency).
declare module 'qrcode-terminal' {
  const qrcodeTerminal: {
    generate(input: string, opts?: { small?: boolean }, cb?: (qr: string) => void): void;
    setErrorLevel(level: 'L' | 'M' | 'Q' | 'H'): void;
  };
  export default qrcodeTerminal;
}
