// mac_array: LANES multiply-accumulate lanes sharing one a-operand.
//
// Synthesizable Verilog-2001. Matches intsim.matmul on
//   Datapath(a=int|uintA_BITS, b=int|uintB_BITS, acc_bits=ACC_BITS, k_chunk=1,
//            overflow="saturate" (sat = 1) | "wrap" (sat = 0))
// with GemmResult.overflow as the per-lane flag. Policy "raise" runs as "wrap": the golden
// suite stores the wrapped registers and the overflow flags, which the design must raise.
//
// Parameters (a golden spec's matmul config selects them; intsim.golden.sim.mac_parameters):
//   A_BITS, B_BITS     operand widths (>= 1; >= 2 when signed)
//   A_SIGNED, B_SIGNED 1: two's complement operand, 0: unsigned
//   ACC_BITS           signed accumulator width (>= 2)
//   LANES              output columns computed at once
// Ports (lane l: b[l*B_BITS +: B_BITS], bias/acc[l*ACC_BITS +: ACC_BITS], ovf[l]):
//   clk, rst (synchronous, active high)
//   load   acc[l] <= bias[l], ovf[l] <= 0
//   en     acc[l] <= acc[l] + a * b[l]: the exact sum, then
//            sat = 1: clamped to [-2**(ACC_BITS-1), 2**(ACC_BITS-1) - 1]
//            sat = 0: wrapped (its low ACC_BITS bits, two's complement)
//          ovf[l] <= ovf[l] | (the exact sum did not fit ACC_BITS)
//   priority rst > load > en. Latency: acc and ovf hold the result of a MAC one clock after
//   the edge that took its operands (one MAC per lane per clock).
//
// Deliberately broken variants, for testing the checkers (never define in real use):
//   BROKEN_NO_SAT      the saturation logic is missing: sat = 1 wraps
//   BROKEN_B_UNSIGNED  operand b is zero-extended (read as unsigned) even when B_SIGNED = 1

`timescale 1ns/1ps

module mac_array #(
    parameter integer A_BITS   = 8,
    parameter integer B_BITS   = 8,
    parameter integer A_SIGNED = 1,
    parameter integer B_SIGNED = 1,
    parameter integer ACC_BITS = 32,
    parameter integer LANES    = 4
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      load,
    input  wire                      en,
    input  wire                      sat,
    input  wire [A_BITS-1:0]         a,
    input  wire [LANES*B_BITS-1:0]   b,
    input  wire [LANES*ACC_BITS-1:0] bias,
    output wire [LANES*ACC_BITS-1:0] acc,
    output wire [LANES-1:0]          ovf
);
    // operands extended by one bit (sign or zero), product and sum widths
    localparam integer PW  = A_BITS + B_BITS + 2;
    localparam integer SW  = ((ACC_BITS > PW) ? ACC_BITS : PW) + 1;
    localparam integer TOP = SW - ACC_BITS + 1;  // sum bits that must all equal the sign

`ifdef BROKEN_NO_SAT
    wire sat_en = 1'b0;
`else
    wire sat_en = sat;
`endif
`ifdef BROKEN_B_UNSIGNED
    localparam integer B_EXT = 0;
`else
    localparam integer B_EXT = B_SIGNED;
`endif

    wire               a_top = (A_SIGNED != 0) ? a[A_BITS-1] : 1'b0;
    wire signed [A_BITS:0] a_s = {a_top, a};

    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : lane
            reg  [ACC_BITS-1:0] acc_r;
            reg                 ovf_r;
            wire [B_BITS-1:0]   b_l   = b[l*B_BITS +: B_BITS];
            wire                b_top = (B_EXT != 0) ? b_l[B_BITS-1] : 1'b0;
            wire signed [B_BITS:0] b_s = {b_top, b_l};
            wire signed [PW-1:0]   prod  = a_s * b_s;
            wire signed [SW-1:0]   acc_x = $signed(acc_r);
            wire signed [SW-1:0]   prod_x = prod;
            wire signed [SW-1:0]   sum   = acc_x + prod_x;
            wire [TOP-1:0]         top   = sum[SW-1:ACC_BITS-1];
            wire                   fits  = (top == {TOP{1'b0}}) || (top == {TOP{1'b1}});
            wire [ACC_BITS-1:0]    maxv  = {1'b0, {(ACC_BITS-1){1'b1}}};
            wire [ACC_BITS-1:0]    minv  = {1'b1, {(ACC_BITS-1){1'b0}}};
            wire [ACC_BITS-1:0]    next  = (fits || !sat_en) ? sum[ACC_BITS-1:0] : (sum[SW-1] ? minv : maxv);

            always @(posedge clk) begin
                if (rst) begin
                    acc_r <= {ACC_BITS{1'b0}};
                    ovf_r <= 1'b0;
                end else if (load) begin
                    acc_r <= bias[l*ACC_BITS +: ACC_BITS];
                    ovf_r <= 1'b0;
                end else if (en) begin
                    acc_r <= next;
                    ovf_r <= ovf_r | ~fits;
                end
            end

            assign acc[l*ACC_BITS +: ACC_BITS] = acc_r;
            assign ovf[l] = ovf_r;
        end
    endgenerate
endmodule
