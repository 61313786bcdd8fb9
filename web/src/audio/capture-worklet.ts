// AudioWorklet processor: copies the first input channel into preallocated frames and posts each
// full frame to the main thread as a transferable buffer. Never logs, never allocates per block
// except the frame it hands over.

declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
  constructor(options?: unknown);
}

interface Options {
  processorOptions?: { frameMs?: number };
}

class CaptureProcessor extends AudioWorkletProcessor {
  private frame: Float32Array;
  private filled = 0;

  constructor(options: Options) {
    super(options);
    const frameMs = options.processorOptions?.frameMs ?? 50;
    this.frame = new Float32Array(Math.max(128, Math.round((sampleRate * frameMs) / 1000)));
  }

  process(inputs: Float32Array[][]): boolean {
    const channel = inputs[0]?.[0];
    if (!channel) return true;
    let offset = 0;
    while (offset < channel.length) {
      const n = Math.min(channel.length - offset, this.frame.length - this.filled);
      this.frame.set(channel.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === this.frame.length) {
        const full = this.frame;
        const length = full.length; // read before the transfer detaches the buffer
        this.port.postMessage(full, [full.buffer]);
        this.frame = new Float32Array(length);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("voxlive-capture", CaptureProcessor);
