// requant_tflite: TFLite requantization of an int32 accumulator to a signed OUT_BITS output.
//
// Synthesizable Verilog-2001. Matches intsim's
//   requantize(x, scale, mode="tflite_double", in_type="int32", out="int<OUT_BITS>",
//              zero_point=ZP)
// i.e. TFLite's MultiplyByQuantizedMultiplier (double-rounding build) plus the zero point and the
// output clamp, with (MULT, SHIFT) = intsim.core.dyadic.quantize_multiplier(scale):
//   left     = max(SHIFT, 0);  right = max(-SHIFT, 0)
//   shifted  = x << left                      (32-bit register; intsim raises if it wraps)
//   srdhm    = floor((shifted * MULT + 2**30) / 2**31)       SRDHM, ties toward +inf
//              (INT32_MAX when shifted = MULT = -2**31)
//   rounded  = RDBPOT(srdhm, right)           x / 2**right, ties away from zero:
//              mask = 2**right - 1; (srdhm >>> right) + ((srdhm & mask) > (mask >> 1) + (srdhm < 0))
//   y        = clamp(rounded + ZP, -2**(OUT_BITS-1), 2**(OUT_BITS-1) - 1)
// The golden suite's taps srdhm and rounded are the registers of the same names.
//
// Parameters: MULT (0 .. 2**31 - 1), SHIFT (-31 .. 30), ZP (output zero point), OUT_BITS (2..32).
// Ports: clk; in_valid, x (int32); out_valid, y (signed OUT_BITS), srdhm, rounded (int32 taps).
// Latency: 1 clock (one input per clock; y and the taps are registered on the edge that takes x,
// out_valid follows in_valid by one clock). No reset is needed for the datapath; out_valid
// clears under rst.
//
// Deliberately broken variants, for testing the checkers (never define in real use):
//   BROKEN_ROUND_FLOOR      the rounding divide is a bare arithmetic shift (floor, no rounding)
//   BROKEN_CLAMP_BEFORE_ZP  the clamp comes before the zero point: y = wrap(clamp(rounded) + ZP)

`timescale 1ns/1ps

module requant_tflite #(
    parameter signed [63:0] MULT     = 64'sd1073741824,
    parameter integer       SHIFT    = 0,
    parameter integer       ZP       = 0,
    parameter integer       OUT_BITS = 8
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       in_valid,
    input  wire signed [31:0]         x,
    output reg                        out_valid,
    output reg  signed [OUT_BITS-1:0] y,
    output reg  signed [31:0]         srdhm,
    output reg  signed [31:0]         rounded
);
    localparam integer LEFT  = (SHIFT > 0) ? SHIFT : 0;
    localparam integer RIGHT = (SHIFT < 0) ? -SHIFT : 0;
    localparam signed [63:0] QMIN = -(64'sd1 <<< (OUT_BITS - 1));
    localparam signed [63:0] QMAX = (64'sd1 <<< (OUT_BITS - 1)) - 1;

    wire signed [31:0] shifted = x <<< LEFT;
    wire signed [31:0] mult32  = MULT[31:0];
    wire signed [63:0] prod    = shifted * mult32;
    wire signed [63:0] nudged  = prod + (64'sd1 <<< 30);
    wire signed [63:0] hi      = nudged >>> 31;
    wire               both_min = (shifted == 32'sh80000000) && (mult32 == 32'sh80000000);
    wire signed [31:0] s_val   = both_min ? 32'sh7fffffff : hi[31:0];

    wire [31:0]        mask    = (32'd1 << RIGHT) - 32'd1;
    wire [31:0]        rem     = s_val & mask;
    wire [31:0]        thr     = (mask >> 1) + {31'd0, s_val[31]};
`ifdef BROKEN_ROUND_FLOOR
    wire signed [31:0] r_val   = s_val >>> RIGHT;
`else
    wire signed [31:0] r_val   = (s_val >>> RIGHT) + ((rem > thr) ? 32'sd1 : 32'sd0);
`endif

    wire signed [63:0] r_ext   = r_val;
    wire signed [63:0] zp_ext  = ZP;
`ifdef BROKEN_CLAMP_BEFORE_ZP
    wire signed [63:0] c_val   = (r_ext < QMIN) ? QMIN : ((r_ext > QMAX) ? QMAX : r_ext);
    wire signed [63:0] y_val   = c_val + zp_ext;   // wraps to OUT_BITS below
`else
    wire signed [63:0] z_val   = r_ext + zp_ext;
    wire signed [63:0] y_val   = (z_val < QMIN) ? QMIN : ((z_val > QMAX) ? QMAX : z_val);
`endif

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
        end else begin
            out_valid <= in_valid;
        end
        if (in_valid) begin
            y       <= y_val[OUT_BITS-1:0];
            srdhm   <= s_val;
            rounded <= r_val;
        end
    end
endmodule
