// ibert_softmax: I-BERT's integer softmax (IntSoftmax, with its i-exp), one row at a time.
//
// Synthesizable Verilog-2001 (the constant divide of i-exp and the row's reciprocal are written
// as '/': a synthesis flow maps them to dividers, or replaces them by a multiplier / an iterative
// divider with the same results). Matches intsim's
//   intsim.ops.ibert.softmax(x, scale, variant="published", out_bit=OUT_BIT, in_type=int<IN_BITS>)
// along the last axis, with the constants intsim derives from the input scale S:
//   X0, B_INT, C_INT = exp_constants(S)["x0"], ["b_int"], ["c_int"];  N_EXP = 30
//   RQ_M, RQ_E       = softmax_requant(S)[:2]         (the 16-bit requantization of exp)
// (intsim.golden.sim.softmax_parameters(scale) returns them by name). Per row of n elements:
//   x_sub     = x - max(row)
//   x_clamped = max(x_sub, N_EXP * X0)
//   q         = floor(x_clamped / X0)                 (>= 0: x_clamped <= 0 and X0 < 0)
//   r         = x_clamped - X0 * q
//   poly      = r * (r + B_INT) + C_INT
//   exp       = max(poly * 2**(N_EXP - q), 0)        (64 bits)
//   exp16     = clamp(round_half_even(exp * RQ_M / 2**RQ_E), -32768, 32767)
//   sum       = sum of the row's exp16;  factor = floor(2**32 / sum)  (sum 0: divide by 1)
//   y         = floor(exp16 * factor / 2**(32 - OUT_BIT))  in [0, 2**OUT_BIT]
// The golden suite's taps exp16 (per element), sum and factor (per row) are the registers of the
// same names.
//
// Parameters: IN_BITS (input width, <= 32), MAX_N (longest row), OUT_BIT (1..30), X0, B_INT,
//   C_INT, RQ_M, RQ_E (from the scale, above).
// Ports: clk, rst (synchronous); in_valid, in_x, in_last: a row, one element per clock, in_last
//   on its last element (at most MAX_N; inputs are ignored while busy); out_valid, out_y,
//   out_exp16, out_last: the row's results in order, one per clock; out_sum, out_factor: the
//   row's sum and factor while out_valid; busy: from the edge that takes in_last until out_last.
// Latency: n clocks computing the exponents (one per clock), one clock for the reciprocal, then
//   the first out_valid on the clock after: y[0] is registered n + 2 edges after the edge that
//   took in_last, and the row streams out on n consecutive clocks. A new row may start on the
//   clock after out_last.
//
// Deliberately broken variant, for testing the checkers (never define in real use):
//   BROKEN_EXP16_FLOOR  the 16-bit requantization truncates (floor) instead of rounding half to even

`timescale 1ns/1ps

module ibert_softmax #(
    parameter integer       IN_BITS = 32,
    parameter integer       MAX_N   = 64,
    parameter integer       OUT_BIT = 8,
    parameter signed [63:0] X0      = -70,
    parameter signed [63:0] B_INT   = 270,
    parameter signed [63:0] C_INT   = 27921,
    parameter signed [63:0] RQ_M    = 1260095003,
    parameter integer       RQ_E    = 60
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      in_valid,
    input  wire                      in_last,
    input  wire signed [IN_BITS-1:0] in_x,
    output reg                       out_valid,
    output reg                       out_last,
    output reg         [15:0]        out_y,
    output reg  signed [15:0]        out_exp16,
    output reg  signed [31:0]        out_sum,
    output reg         [31:0]        out_factor,
    output reg                       busy
);
    localparam integer N_EXP = 30;
    localparam integer AW = (MAX_N <= 2) ? 1 : $clog2(MAX_N);
    localparam [1:0] S_LOAD = 2'd0, S_EXP = 2'd1, S_DIV = 2'd2, S_OUT = 2'd3;

    reg signed [IN_BITS-1:0] xmem [0:MAX_N-1];
    reg signed [15:0]        emem [0:MAX_N-1];
    reg [1:0]                state;
    reg [AW:0]               idx, n;
    reg signed [IN_BITS-1:0] mx;
    reg signed [63:0]        sum;
    reg [32:0]               factor;

    // ---- the exponent of one element (combinational) ----------------------------------------
    wire signed [63:0]  x_cur     = xmem[idx[AW-1:0]];
    wire signed [63:0]  mx_ext    = mx;
    wire signed [63:0]  x_sub     = x_cur - mx_ext;
    wire signed [63:0]  nx0       = X0 * N_EXP;
    wire signed [63:0]  x_clamped = (x_sub > nx0) ? x_sub : nx0;
    wire signed [63:0]  q         = x_clamped / X0;  // both operands <= 0: truncation is floor
    wire signed [63:0]  r         = x_clamped - X0 * q;
    wire signed [63:0]  poly      = r * (r + B_INT) + C_INT;
    wire [5:0]          sh        = N_EXP - q[5:0];
    wire signed [63:0]  exp_v     = (poly <= 0) ? 64'sd0 : (poly <<< sh);
    wire signed [127:0] p16       = exp_v * RQ_M;
    wire signed [127:0] fl16      = p16 >>> RQ_E;
    wire [127:0]        rem16     = p16 & ((128'd1 << RQ_E) - 128'd1);
    wire [127:0]        half16    = 128'd1 << (RQ_E - 1);
`ifdef BROKEN_EXP16_FLOOR
    wire                up16      = 1'b0;
`else
    wire                up16      = (rem16 > half16) || ((rem16 == half16) && fl16[0]);
`endif
    wire signed [127:0] rn16      = fl16 + (up16 ? 128'sd1 : 128'sd0);
    wire signed [15:0]  exp16     = (rn16 > 128'sd32767) ? 16'sh7fff :
                                    ((rn16 < -128'sd32768) ? 16'sh8000 : rn16[15:0]);

    // ---- the output of one element (combinational) -------------------------------------------
    wire signed [15:0]  e_cur     = emem[idx[AW-1:0]];
    wire signed [63:0]  prod      = e_cur * $signed({31'd0, factor});
    wire signed [63:0]  y_val     = prod >>> (32 - OUT_BIT);
    wire [63:0]         div_den   = (sum == 64'sd0) ? 64'd1 : sum;

    always @(posedge clk) begin
        if (rst) begin
            state <= S_LOAD; idx <= 0; n <= 0; busy <= 1'b0;
            out_valid <= 1'b0; out_last <= 1'b0;
        end else begin
            out_valid <= 1'b0;
            out_last  <= 1'b0;
            case (state)
                S_LOAD: if (in_valid) begin
                    xmem[idx[AW-1:0]] <= in_x;
                    if (idx == 0 || in_x > mx) mx <= in_x;
                    if (in_last || idx == MAX_N - 1) begin
                        n <= idx + 1'b1; idx <= 0; sum <= 64'sd0; busy <= 1'b1; state <= S_EXP;
                    end else begin
                        idx <= idx + 1'b1;
                    end
                end
                S_EXP: begin
                    emem[idx[AW-1:0]] <= exp16;
                    sum <= sum + exp16;
                    if (idx == n - 1'b1) begin idx <= 0; state <= S_DIV; end
                    else idx <= idx + 1'b1;
                end
                S_DIV: begin
                    factor <= (64'd1 << 32) / div_den;
                    state  <= S_OUT;
                end
                S_OUT: begin
                    out_valid  <= 1'b1;
                    out_y      <= y_val[15:0];
                    out_exp16  <= e_cur;
                    out_sum    <= sum[31:0];
                    out_factor <= factor[31:0];
                    if (idx == n - 1'b1) begin
                        out_last <= 1'b1; idx <= 0; busy <= 1'b0; state <= S_LOAD;
                    end else begin
                        idx <= idx + 1'b1;
                    end
                end
            endcase
        end
    end
endmodule
