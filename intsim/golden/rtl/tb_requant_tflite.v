// tb_requant_tflite: runs one intsim golden requantize case (mode tflite_double, int32 input)
// through requant_tflite ($readmemh / $writememh), one word per clock.
//
// Plusargs: +X=<file> +N=<int elements> +Y=<file> [+SRDHM=<file>] [+ROUNDED=<file>]
// Parameters: those of requant_tflite, and DEPTH (words per memory).

`timescale 1ns/1ps

module tb_requant_tflite;
    parameter signed [63:0] MULT     = 64'sd1073741824;
    parameter integer       SHIFT    = 0;
    parameter integer       ZP       = 0;
    parameter integer       OUT_BITS = 8;
    parameter integer       DEPTH    = 65536;

    reg clk = 1'b0;
    always #5 clk = ~clk;

    reg                        rst, in_valid;
    reg  signed [31:0]         x;
    wire                       out_valid;
    wire signed [OUT_BITS-1:0] y;
    wire signed [31:0]         srdhm, rounded;

    requant_tflite #(.MULT(MULT), .SHIFT(SHIFT), .ZP(ZP), .OUT_BITS(OUT_BITS)) dut (
        .clk(clk), .rst(rst), .in_valid(in_valid), .x(x),
        .out_valid(out_valid), .y(y), .srdhm(srdhm), .rounded(rounded)
    );

    reg [31:0]         x_mem [0:DEPTH-1];
    reg [OUT_BITS-1:0] y_mem [0:DEPTH-1];
    reg [63:0]         s_mem [0:DEPTH-1];
    reg [63:0]         r_mem [0:DEPTH-1];
    reg [8*1024-1:0]   x_file, y_file, s_file, r_file;
    integer n, i, o;
    reg dump_s, dump_r;

    initial begin
        if (!$value$plusargs("X=%s", x_file) || !$value$plusargs("Y=%s", y_file) ||
            !$value$plusargs("N=%d", n)) begin
            $display("tb_requant_tflite: ERROR: missing plusargs (+X +Y +N)");
            $finish;
        end
        dump_s = ($value$plusargs("SRDHM=%s", s_file) != 0);
        dump_r = ($value$plusargs("ROUNDED=%s", r_file) != 0);
        if (n > DEPTH || n < 1) begin
            $display("tb_requant_tflite: ERROR: N=%0d outside 1..DEPTH=%0d", n, DEPTH);
            $finish;
        end
        $readmemh(x_file, x_mem, 0, n - 1);
        rst = 1'b1; in_valid = 1'b0; x = 0;
        @(posedge clk); #1 rst = 1'b0;
        o = 0;
        for (i = 0; i < n + 1; i = i + 1) begin
            in_valid = (i < n);
            x = (i < n) ? x_mem[i] : 32'd0;
            @(posedge clk); #1;
            if (out_valid) begin  // latency 1: the word taken at the previous edge
                y_mem[o] = y;
                s_mem[o] = {{32{srdhm[31]}}, srdhm};
                r_mem[o] = {{32{rounded[31]}}, rounded};
                o = o + 1;
            end
        end
        if (o != n) begin
            $display("tb_requant_tflite: ERROR: %0d outputs for %0d inputs", o, n);
            $finish;
        end
        $writememh(y_file, y_mem, 0, n - 1);
        if (dump_s) $writememh(s_file, s_mem, 0, n - 1);
        if (dump_r) $writememh(r_file, r_mem, 0, n - 1);
        $finish;
    end
endmodule
