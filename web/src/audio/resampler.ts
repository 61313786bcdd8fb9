// A streaming windowed-sinc resampler: low-pass below the new Nyquist, then interpolate.
// Used when the browser will not run an AudioContext at 16 kHz (Firefox, Safari).

const TAPS_PER_SIDE = 24; // kernel half-width, in input samples at the cutoff
const PHASES = 256; // kernel table resolution between two input samples

function blackman(x: number): number {
  // x in [-1, 1]
  const t = (x + 1) / 2;
  return 0.42 - 0.5 * Math.cos(2 * Math.PI * t) + 0.08 * Math.cos(4 * Math.PI * t);
}

export class Resampler {
  readonly inRate: number;
  readonly outRate: number;
  private readonly step: number; // input samples per output sample
  private readonly half: number; // kernel half-width in input samples
  private readonly table: Float32Array; // PHASES+1 rows of 2*half taps
  private history: Float32Array;
  private pos: number; // position of the next output sample, relative to history[0]

  constructor(inRate: number, outRate: number) {
    if (!(inRate > 0 && outRate > 0)) throw new RangeError(`expected positive rates, got ${inRate} → ${outRate}`);
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate;
    // Cut off at 90% of the lower Nyquist, as a fraction of the input rate.
    const cutoff = 0.5 * Math.min(1, outRate / inRate) * 0.9;
    this.half = Math.ceil(TAPS_PER_SIDE / Math.min(1, outRate / inRate) / 2) * 2;
    const width = 2 * this.half;
    this.table = new Float32Array((PHASES + 1) * width);
    for (let p = 0; p <= PHASES; p++) {
      const frac = p / PHASES;
      let sum = 0;
      for (let k = 0; k < width; k++) {
        const x = k - this.half + 1 - frac; // distance from the output point
        const arg = 2 * cutoff * x;
        const sinc = x === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
        const v = 2 * cutoff * sinc * blackman(x / (this.half + 1));
        this.table[p * width + k] = v;
        sum += v;
      }
      for (let k = 0; k < width; k++) this.table[p * width + k] /= sum; // unity DC gain
    }
    this.history = new Float32Array(width); // zeros: the filter starts from silence
    this.pos = this.half - 1;
  }

  /** Input samples kept between calls: about one kernel width, whatever has been processed. */
  get heldSamples(): number {
    return this.history.length;
  }

  /** Resample one chunk; keeps state between calls. */
  process(input: Float32Array): Float32Array {
    if (this.inRate === this.outRate) return input;
    const buf = new Float32Array(this.history.length + input.length);
    buf.set(this.history);
    buf.set(input, this.history.length);
    const width = 2 * this.half;
    const out: number[] = [];
    while (Math.floor(this.pos) + this.half < buf.length) {
      const base = Math.floor(this.pos);
      const frac = this.pos - base;
      const phase = frac * PHASES;
      const p0 = Math.floor(phase);
      const w = phase - p0;
      const row0 = p0 * width;
      const row1 = (p0 + 1) * width;
      let acc = 0;
      const first = base - this.half + 1;
      for (let k = 0; k < width; k++) {
        const tap = this.table[row0 + k] * (1 - w) + this.table[row1 + k] * w;
        acc += buf[first + k] * tap;
      }
      out.push(acc);
      this.pos += this.step;
    }
    // Keep the samples the next output still needs.
    const keepFrom = Math.max(0, Math.floor(this.pos) - this.half + 1);
    this.history = buf.slice(keepFrom);
    this.pos -= keepFrom;
    return Float32Array.from(out);
  }
}
